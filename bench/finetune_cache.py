"""Fine-tuning steps with the teacher's outputs kept per training item vs the teacher run at every step.

Fine-tuning keeps the frozen teacher's outputs per training item (``TeacherLatentCache``: the
GPT's teacher-forced logits, the SoVITS style/prior/flow latents), so a search runs the teacher
once per item instead of at every step. This times that on a full-size v2 voice (random weights:
speed does not depend on them) with synthetic training items of realistic lengths (4-8 s: 25
semantic codes and about 12 phones per second), for each plan:

- warm: the cache already holds every item's outputs (every trial after the search's first);
- teacher every step: a cache with ``budget_bytes=0`` (nothing kept: each item of each batch
  goes through the teacher again, alone);
- GPT plans also: batched teacher, the code before the GPT's logits were kept (one teacher
  forward on the padded batch per step). The SoVITS latents were computed per item before too.

Both fine-tune the same student on the same batches (same seed); the only difference is the
teacher's work. Each run does one untimed warm-up step, then ``--steps`` timed steps (the
teacher-distance checks are left out of the timing); the kinds of run take turns, round by
round, and steps/s is from the median step. Also printed: the bytes kept per item and
what computing one item's outputs costs (once per search with the cache).

    python bench/finetune_cache.py             # gpt-int8 and flow-int8, 2 threads (~5 min of CPU time)
    python bench/finetune_cache.py --plans gpt-prune0.2 --threads 1 --steps 3 --rounds 2
    python bench/finetune_cache.py --small --steps 2 --rounds 1   # a smoke run (tiny configs)
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from autocompress.compress import CompressionPlan, GroupPlan, PruneConfig, QuantConfig, compress  # noqa: E402
from autocompress.search.abort import AbortRule  # noqa: E402
from autocompress.search import finetune as finetune_mod  # noqa: E402
from autocompress.search.distill import VoiceItem, compressed_groups, eval_targets, gpt_batch, gpt_logits  # noqa: E402
from autocompress.search.finetune import TeacherLatentCache, finetune, latents_bytes, logits_bytes  # noqa: E402
from autocompress.search.space import FinetuneSettings  # noqa: E402

PLANS: dict[str, CompressionPlan] = {
    "gpt-int8": CompressionPlan(name="gpt-int8", groups={"gpt": GroupPlan(quant=QuantConfig(weights="int8"))}),
    "gpt-prune0.2": CompressionPlan(name="gpt-prune0.2", groups={"gpt": GroupPlan(prune=PruneConfig(ratio=0.2))}),
    "flow-int8": CompressionPlan(name="flow-int8", groups={"flow": GroupPlan(quant=QuantConfig(weights="int8"))}),
    "enc_p-int8": CompressionPlan(name="enc_p-int8", groups={"enc_p": GroupPlan(quant=QuantConfig(weights="int8"))}),
}
CODES_PER_S, PHONES_PER_S, SPEC_FRAMES_PER_S, MAX_SPEC_FRAMES = 25, 12, 50, 500


def voice(small: bool, device: torch.device):  # noqa: ANN201
    """A v2 voice with random weights: full size, or the tiny test configs."""
    from autocompress.models.gpt_sovits.config import gpt_tiny, gpt_v2, sovits_tiny, sovits_v2
    from autocompress.models.gpt_sovits.gpt import Text2SemanticGPT
    from autocompress.models.gpt_sovits.sovits import SynthesizerTrn
    from autocompress.models.gpt_sovits.voice import Voice

    torch.manual_seed(0)
    gpt = Text2SemanticGPT(gpt_tiny() if small else gpt_v2()).eval()
    sovits = SynthesizerTrn(sovits_tiny() if small else sovits_v2(), include_enc_q=False).eval()
    with torch.no_grad():
        for name, p in sovits.flow.named_parameters():
            if ".post." in f".{name}":
                p.normal_(0.0, 0.02)  # zero-initialised, the flow would be an identity: not a trained flow's cost
    return Voice(gpt.to(device), sovits.to(device))


def items(seconds: list[float], phone_vocab: int, spec_bins: int, device: torch.device, seed: int = 0) -> list[VoiceItem]:
    """Synthetic training items of the given lengths in seconds."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for i, s in enumerate(seconds):
        n_phones, n_codes = round(PHONES_PER_S * s), round(CODES_PER_S * s)
        frames = min(round(SPEC_FRAMES_PER_S * s), MAX_SPEC_FRAMES)
        out.append(VoiceItem(
            name=f"item{i:02d}-{s:.1f}s",
            phones=torch.randint(0, phone_vocab, (n_phones,), generator=gen).to(device),
            bert=torch.randn(1024, n_phones, generator=gen).to(device),
            codes=torch.randint(0, 1024, (n_codes,), generator=gen).to(device),
            refer=torch.randn(1, spec_bins, frames, generator=gen).abs().to(device),
        ))  # fmt: skip
    return out


@contextlib.contextmanager
def batched_teacher(teacher):  # noqa: ANN001, ANN201
    """Within: fine-tuning takes each step's GPT targets from one teacher forward on the whole
    batch, as it did before the teacher's logits were kept per item."""
    kept = finetune_mod.gpt_targets

    @torch.no_grad()
    def targets(latents, batch, valid):  # noqa: ANN001, ANN202
        return gpt_logits(teacher.gpt, gpt_batch(batch))

    finetune_mod.gpt_targets = targets
    try:
        yield
    finally:
        finetune_mod.gpt_targets = kept


class _Stop(Exception):
    """Ends a timed run before its last step's teacher-distance check."""


def step_times(student, teacher, groups, train, targets, cache, steps: int, batch_size: int, sync) -> list[float]:  # noqa: ANN001
    """Seconds of each of ``steps`` fine-tuning steps after one untimed warm-up step."""
    settings = dataclasses.replace(FinetuneSettings(), batch_size=batch_size, eval_every=10**9)
    stamps: list[float] = []

    def on_step(step: int, total: int, loss: float, progress: float | None) -> None:
        sync()
        stamps.append(time.perf_counter())
        if step == steps + 1:
            raise _Stop

    try:  # the last step (steps + 2) would check the teacher distance: never reached
        finetune(student, teacher, groups, train, targets, steps + 2, settings,
                 AbortRule(patience=10**9, diverged=1e30), on_step=on_step, seed=1, latents=cache)
    except _Stop:
        pass
    return [b - a for a, b in zip(stamps, stamps[1:])]


def mb(n: float) -> str:
    return f"{n / 2**20:.2f} MiB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plans", nargs="+", default=["gpt-int8", "flow-int8"], choices=list(PLANS))
    parser.add_argument("--steps", type=int, default=3, help="timed steps per run (after one warm-up step)")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each kind, alternating (medians over all steps)")
    parser.add_argument("--batch-size", type=int, default=FinetuneSettings().batch_size)
    parser.add_argument("--items", type=int, default=6, help="training items, 4 s to 8 s long")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:n]")
    parser.add_argument("--small", action="store_true", help="tiny configs instead of full-size v2 (a smoke run)")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.rounds < 1 or args.items < 1 or args.batch_size < 1:
        parser.error("--steps, --rounds, --items and --batch-size must each be at least 1")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: torch sees no CUDA device here; use --device cpu")
    torch.set_num_threads(args.threads)
    # budget_bytes=0 is the point of the baseline, not a full cache to warn about
    logging.getLogger("autocompress.search.finetune").setLevel(logging.ERROR)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)

    t0 = time.perf_counter()
    teacher = voice(args.small, device)
    spec_bins = teacher.sovits.config.filter_length // 2 + 1
    lengths = [4.0 + 4.0 * i / max(1, args.items - 1) for i in range(args.items)]
    train = items(lengths, teacher.gpt.config.phoneme_vocab_size, spec_bins, device)
    held_out = items([3.0], teacher.gpt.config.phoneme_vocab_size, spec_bins, device, seed=1)
    targets = eval_targets(teacher, held_out, teacher.sovits.segment_frames)
    from autocompress.score.metric import host_device

    n_params = sum(p.numel() for m in (teacher.gpt, teacher.sovits) for p in m.parameters())
    print(f"measured on {host_device(device)}; models: {'tiny' if args.small else 'full-size v2'} "
          f"({n_params / 1e6:.0f} M parameters), built in {time.perf_counter() - t0:.0f} s")
    print(f"{args.items} training items of {lengths[0]:.0f}-{lengths[-1]:.0f} s, batch {args.batch_size}, "
          f"{args.steps} timed steps x {args.rounds} rounds per kind and plan")

    rows = []
    for name in args.plans:
        plan = PLANS[name]
        groups = compressed_groups(plan)
        gpt_plan = "gpt" in groups
        # Fill the cache as the search's first trial does (every item fits: the cache of a later
        # trial), timing each item's teacher outputs: their cost once per search with the cache.
        warm = TeacherLatentCache(teacher, budget_bytes=2**40)
        fill = []
        for item in train:
            sync()
            t1 = time.perf_counter()
            (warm.logits if gpt_plan else warm.get)(item)
            sync()
            fill.append(time.perf_counter() - t1)
        kept = [logits_bytes(warm.logits(it)) if gpt_plan else latents_bytes(warm.get(it)) for it in train]
        student = compress(teacher, plan)
        samples: dict[str, list[float]] = {"warm": [], "every step": [], **({"batched": []} if gpt_plan else {})}
        for r in range(args.rounds):
            kinds = list(samples)[r % len(samples):] + list(samples)[: r % len(samples)]
            for kind in kinds:
                cache = warm if kind == "warm" else TeacherLatentCache(teacher, budget_bytes=0)
                with batched_teacher(teacher) if kind == "batched" else contextlib.nullcontext():
                    samples[kind] += step_times(student, teacher, groups, train, targets, cache, args.steps,
                                                args.batch_size, sync)
        med = {k: statistics.median(v) for k, v in samples.items()}
        rows.append((name, "GPT logits" if gpt_plan else "SoVITS latents", kept, statistics.median(fill), med))
        del student

    print(f"\n{'plan':<13} {'teacher outputs':<15} {'kept/item':>10} {'all items':>10} {'teacher/item':>12}  "
          f"{'steps/s: warm':>13} {'every step':>10} {'batched':>8}  {'speed-up: vs every step':>23} {'vs batched':>10}")
    for name, what, kept, fill_s, med in rows:
        sps = {k: 1 / v for k, v in med.items()}
        batched = f"{sps['batched']:8.3f}" if "batched" in sps else f"{'-':>8}"
        vs_batched = f"{sps['warm'] / sps['batched']:9.2f}x" if "batched" in sps else f"{'-':>10}"
        print(f"{name:<13} {what:<15} {mb(statistics.mean(kept)):>10} {mb(sum(kept)):>10} {1000 * fill_s:9.0f} ms  "
              f"{sps['warm']:13.3f} {sps['every step']:10.3f} {batched}  {sps['warm'] / sps['every step']:22.2f}x "
              f"{vs_batched}")
    print("\nsteps/s from the median step; warm: every item's teacher outputs kept (a later trial); every step: "
          "budget_bytes=0,\nthe teacher run on each item of each step; batched: one teacher forward per step on the "
          "padded batch\n(the GPT's targets before they were kept). teacher/item: computing one item's outputs "
          "(once per search when kept).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
