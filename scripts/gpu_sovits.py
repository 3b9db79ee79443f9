#!/usr/bin/env python3
"""Continue training the demo SoVITS on a CUDA GPU, from a small packed copy of the work dir.

The build script (``build_demo_voice.py``) trains the demo teacher on this project's CPU. A
lent GPU runs far more steps a minute, but it reaches nothing outside itself, receives a
working tree of at most 64 MiB, and has neither the search daemon's packages nor the audio
scorers that the build script imports. So the work is split in two:

    python scripts/gpu_sovits.py pack --items 450 --out .gpu_pack   # here: phones, codes, FLAC of work/exp
    python scripts/gpu_sovits.py train --pack .gpu_pack --out OUT --minutes 7 --name a   # on the GPU

``train`` needs torch, torchaudio, numpy, soundfile and ``autocompress.models`` only. It
starts from a SoVITS file (default: the shipped demo voice), trains it with the build
script's recipe (the ``decode`` objective: codes -> enc_p -> reverse flow -> a random decoder
slice, mel + multi-resolution STFT + DC losses, a least-squares period discriminator with
feature matching) at a GPU-sized batch, and writes, in the shipped fp16 format:

- ``<name>-best.pth``: the best model by held-out log-mel L1 less half the voiced recall
  (``training.sovits_select``, the build script's SoVITS rule, without its DistillMOS term:
  DistillMOS is not installed there); pick among the files here with ``--stage
  evaluate``-style measurements;
- ``<name>-last.pth`` and ``<name>-log.jsonl`` (one line per evaluation);
- ``<name>-state.pt``: the whole training state (SoVITS, discriminator, both optimisers, step,
  best score), rewritten at every evaluation, so that a run cut off by its time limit loses
  at most one evaluation interval.

A new run starts its discriminator and both optimisers new (the CPU run's state is not
shipped): the discriminator trains alone for ``--disc-warmup`` steps, then the generator's
learning rate ramps up over ``--g-warmup`` steps (fresh Adam moments move every weight by
about the full rate at first, which costs a trained model more than its first steps gain).
``--resume <name>-state.pt`` continues a state instead, with no warm-up (its moments are
kept), its discriminator widths and its step count; each run has its own cosine decay.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import pickle
import random
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf
import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pad_sequence

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from autocompress.cli.argtypes import non_negative_int, positive_int  # noqa: E402
from autocompress.exceptions import AutocompressError  # noqa: E402
from autocompress.models.gpt_sovits.audio import mel_spectrogram, spectrogram_raw  # noqa: E402
from autocompress.models.gpt_sovits.checkpoint import checkpoint_step, load_sovits, save_sovits  # noqa: E402
from autocompress.models.gpt_sovits.discriminator import (  # noqa: E402
    LIGHT_PERIOD_CHANNELS,
    MultiPeriodDiscriminator,
)
from autocompress.models.gpt_sovits.standin import voiced_recall, voicing  # noqa: E402
from autocompress.models.gpt_sovits.training import (  # noqa: E402
    SoVITSLossWeights,
    TrainOptions,
    discriminator_loss,
    save_atomic,
    sovits_decode_forward,
    sovits_optimizer,
    sovits_select,
    waveform_losses,
)

SAMPLE_RATE = 32000
PACK_TSV = "items.tsv"  # name, split, phone ids, codes
DEFAULT_SOVITS = REPO / "autocompress" / "assets" / "demo" / "demo-sovits.pth"
CODE_BUCKET = 25  # codes are padded to a multiple of this (1 s), so few distinct shapes reach cuDNN
STATE_KEYS = frozenset({"model", "disc", "opt", "d_opt", "step", "best", "disc_channels"})  # <name>-state.pt
RECIPE = TrainOptions()  # the build script's defaults: the losses' weights, the rate, the noise scales


# --------------------------------------------------------------------------- pack (here)


def pack(exp: Path, out: Path, n_train: int, eval_names: list[str], seed: int, symbols: str = "v2") -> int:
    """Copy ``n_train`` random items of an experiment folder (upstream layout, with codes) and its
    ``eval_names`` items into ``out``: their audio as FLAC and one TSV of phone ids and codes.
    Returns the bytes written."""
    from autocompress.models.gpt_sovits.data import ExperimentFolder
    from autocompress.models.gpt_sovits.text import phones_to_ids

    folder = ExperimentFolder(exp, check_tensors=False)
    coded = [name for name in folder.names if folder[name].codes]
    missing = [name for name in eval_names if name not in coded]
    if missing:
        raise SystemExit(f"{exp}: no coded items named {', '.join(missing[:3])}")
    train = [name for name in coded if name not in set(eval_names)]
    chosen = sorted(random.Random(seed).sample(train, min(n_train, len(train))))
    if out.exists():  # only an earlier pack is replaced: --out . must not delete a checkout
        if not (out / PACK_TSV).is_file():
            raise SystemExit(f"{out} exists and is not a pack (no {PACK_TSV}); hint: pass a new folder")
        shutil.rmtree(out)
    (out / "wav").mkdir(parents=True)
    with (out / PACK_TSV).open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        for split, names in (("train", chosen), ("eval", eval_names)):
            for name in names:
                item, stem = folder[name], Path(name).stem
                target = out / "wav" / f"{stem}.flac"
                if item.wav_path.suffix.lower() == ".flac":
                    shutil.copyfile(item.wav_path, target)
                else:  # FLAC is about half the bytes of 16-bit PCM, and the pack must travel
                    sf.write(target, item.load_wav().numpy(), SAMPLE_RATE, subtype="PCM_16")
                ids = phones_to_ids(list(item.phones), symbols)
                w.writerow([stem, split, " ".join(map(str, ids)), " ".join(map(str, item.codes))])
    return sum(p.stat().st_size for p in out.rglob("*") if p.is_file())


# --------------------------------------------------------------------------- train (on the GPU)


@dataclass
class Item:
    name: str
    wav: torch.Tensor  # [N] 32 kHz
    spec: torch.Tensor  # [1025, T] linear spectrogram (the reference)
    phones: torch.Tensor  # [L]
    codes: torch.Tensor  # [T25]


def load_pack(folder: Path, device: torch.device) -> dict[str, list[Item]]:
    splits: dict[str, list[Item]] = {"train": [], "eval": []}
    with (folder / PACK_TSV).open(encoding="utf-8", newline="") as f:
        for name, split, phones, codes in csv.reader(f, delimiter="\t"):
            wav, sr = sf.read(folder / "wav" / f"{name}.flac", dtype="float32")
            if sr != SAMPLE_RATE:
                raise SystemExit(f"{name}: {sr} Hz, expected {SAMPLE_RATE}")
            wav = torch.from_numpy(wav).to(device)
            splits[split].append(Item(
                name, wav, spectrogram_raw(wav)[0],
                torch.tensor([int(x) for x in phones.split()], device=device),
                torch.tensor([int(x) for x in codes.split()], device=device),
            ))  # fmt: skip
    if not splits["train"] or not splits["eval"]:
        raise SystemExit(f"{folder / PACK_TSV}: needs train and eval items")
    return splits


def _pad_to(t: torch.Tensor, length: int) -> torch.Tensor:
    return F.pad(t, (0, length - t.shape[-1]))


def batch(items: list[Item], hop: int) -> tuple[torch.Tensor, ...]:
    """The inputs of :func:`sovits_decode_forward`, right-padded (codes to a whole bucket)."""
    dev = items[0].codes.device
    c_len = torch.tensor([it.codes.numel() for it in items], device=dev)
    t_max = CODE_BUCKET * math.ceil(int(c_len.max()) / CODE_BUCKET)
    codes = torch.stack([_pad_to(it.codes, t_max) for it in items])
    text = pad_sequence([it.phones for it in items], batch_first=True)
    t_len = torch.tensor([it.phones.numel() for it in items], device=dev)
    r_len = torch.tensor([it.spec.shape[1] for it in items], device=dev)
    r_max = 2 * CODE_BUCKET * math.ceil(int(r_len.max()) / (2 * CODE_BUCKET))
    refer = torch.stack([_pad_to(it.spec, r_max) for it in items])
    wav = torch.stack([_pad_to(it.wav[: 2 * t_max * hop], 2 * t_max * hop) for it in items])[:, None]
    return codes, c_len, text, t_len, refer, r_len, wav


@torch.no_grad()
def evaluate(model: torch.nn.Module, items: list[Item], sources: list[tuple], cfg) -> dict[str, float]:
    """Held-out log-mel L1 and voiced recall of decoding the true codes at noise scale 0."""
    model.eval()
    mel_l1 = recall = 0.0
    for it, src in zip(items, sources):
        wav = model.decode(it.codes[None, None], it.phones[None], it.spec[None], noise_scale=0.0)[0]
        n = min(wav.shape[-1], it.wav.numel())
        mels = [mel_spectrogram(w, cfg.filter_length, cfg.n_mel_channels) for w in (wav[:, :n], it.wav[None, :n])]
        mel_l1 += float(F.l1_loss(*mels))
        recall += voiced_recall(wav[0], src)[0]
    model.train()
    mel_l1, recall = mel_l1 / len(items), recall / len(items)
    return {"mel_l1": mel_l1, "voiced_recall": recall, "select": sovits_select(mel_l1, recall)}


@dataclass
class Run:
    """What a training run steps: the SoVITS, its discriminator, their optimisers and counts."""

    model: torch.nn.Module
    disc: MultiPeriodDiscriminator
    opt: torch.optim.Optimizer
    d_opt: torch.optim.Optimizer
    channels: list[int]
    start_step: int  # the step count the run began at
    best: float = math.inf  # the lowest held-out select score so far
    resumed: bool = False  # from a saved state: both optimisers' moments are kept, so no warm-up

    def save(self, path: Path, step: int) -> None:
        """Write the resumable state (atomically: a run killed while saving keeps the last one)."""
        state = {"model": self.model.state_dict(), "disc": self.disc.state_dict(), "opt": self.opt.state_dict(),
                 "d_opt": self.d_opt.state_dict(), "step": self.start_step + step, "best": self.best,
                 "disc_channels": self.channels}  # fmt: skip
        save_atomic(state, path)


def start_run(args: argparse.Namespace, device: torch.device) -> Run:
    """A new run from ``--init``, or the state of ``--resume`` (whose widths a different
    ``--disc-channels`` may not change)."""
    model = load_sovits(args.init, map_location=device).train()
    state = None
    if args.resume is not None:
        try:
            state = torch.load(args.resume, map_location=device, weights_only=True)
        except (RuntimeError, pickle.UnpicklingError) as e:
            raise SystemExit(f"{args.resume}: not a training state ({str(e).splitlines()[0]})") from None
        if not isinstance(state, dict) or not STATE_KEYS <= state.keys():
            raise SystemExit(f"{args.resume}: not a training state of this script (no {', '.join(sorted(STATE_KEYS))})")
    channels = list(state["disc_channels"]) if state else args.disc_channels or list(LIGHT_PERIOD_CHANNELS)
    if state and args.disc_channels not in (None, channels):
        raise SystemExit(f"{args.resume} has discriminator widths {','.join(map(str, channels))}; "
                         "hint: leave --disc-channels out to resume it")
    disc = MultiPeriodDiscriminator(model.config, tuple(channels), include_scale=False).to(device)
    run = Run(model, disc, sovits_optimizer(model.parameters(), args.lr), sovits_optimizer(disc.parameters(), args.lr),
              channels, args.start_step if args.start_step is not None else checkpoint_step(args.init))  # fmt: skip
    if state:
        model.load_state_dict(state["model"])
        disc.load_state_dict(state["disc"])
        run.opt.load_state_dict(state["opt"])
        run.d_opt.load_state_dict(state["d_opt"])
        run.start_step, run.best, run.resumed = int(state["step"]), float(state["best"]), True
    return run


def train(args: argparse.Namespace) -> None:
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    args.out.mkdir(parents=True, exist_ok=True)
    run = start_run(args, device)
    model, disc, opt, d_opt = run.model, run.disc, run.opt, run.d_opt
    cfg = model.config
    disc_warmup, g_warmup = (0, 0) if run.resumed else (args.disc_warmup, args.g_warmup)
    weights = SoVITSLossWeights(mel=args.mel_weight, stft=args.stft_weight)
    data = load_pack(args.pack, device)
    if args.batch > len(data["train"]):
        raise SystemExit(f"--batch {args.batch} is more than the pack's {len(data['train'])} training items")
    sources = [voicing(it.wav.cpu()) for it in data["eval"]]
    log_path = args.out / f"{args.name}-log.jsonl"

    def record(step: int, elapsed: float, parts: dict[str, float]) -> None:
        metrics = evaluate(model, data["eval"], sources, cfg)
        improved = metrics["select"] < run.best
        if improved:
            run.best = metrics["select"]
            save_sovits(model, args.out / f"{args.name}-best.pth", step=run.start_step + step)
        line = {"step": run.start_step + step, "seconds": round(elapsed, 1), **metrics, "best": improved,
                "lr": opt.param_groups[0]["lr"], **{f"train_{k}": v for k, v in parts.items()}}
        with log_path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")
        print(json.dumps(line), flush=True)
        if step > 0:
            run.save(args.out / f"{args.name}-state.pt", step)

    print(f"{args.name}: {len(data['train'])} train / {len(data['eval'])} eval items, batch {args.batch}, "
          f"disc channels {run.channels}, from step {run.start_step}"
          f"{' (resumed)' if args.resume else ''}, "
          f"{torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}", flush=True)  # fmt: skip
    record(0, 0.0, {})
    budget = args.minutes * 60
    start = last_eval = time.time()
    step = 0
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    while (args.steps is None or step < args.steps) and time.time() - start < budget:
        frac = min(1.0, (time.time() - start) / budget) if args.steps is None else step / args.steps
        # constant, then a cosine decay to lr_final over the last decay share of the budget
        tail = max(0.0, (frac - (1 - args.decay)) / args.decay) if args.decay > 0 else 0.0
        lr = args.lr_final + (args.lr - args.lr_final) * 0.5 * (1 + math.cos(math.pi * tail))
        # the optimiser state is new too: the generator's rate ramps up after the discriminator's warm-up
        ramp = min(1.0, max(0.0, step - disc_warmup + 1) / g_warmup) if g_warmup > 0 else 1.0
        for g in opt.param_groups:
            g["lr"] = lr * ramp
        for g in d_opt.param_groups:
            g["lr"] = lr
        items = rng.sample(data["train"], args.batch)
        codes, c_len, text, t_len, refer, r_len, wav = batch(items, cfg.hop_length)
        noise = torch.rand(len(items), device=device) * args.max_noise_scale
        warm = step < disc_warmup
        with torch.set_grad_enabled(not warm):
            o, y = sovits_decode_forward(model, codes, c_len, text, t_len, refer, r_len, wav, noise)
        disc.requires_grad_(True)
        d_loss = discriminator_loss(disc, y, o)
        d_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        torch.nn.utils.clip_grad_norm_(disc.parameters(), 100.0)
        d_opt.step()
        disc.requires_grad_(False)
        parts = {"disc": float(d_loss.detach())}
        if not warm:
            loss, g_parts = waveform_losses(cfg, o, y, weights, disc)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 100.0)
            opt.step()
            parts.update(g_parts)
        step += 1
        for k, v in parts.items():
            sums[k] = sums.get(k, 0.0) + v
            counts[k] = counts.get(k, 0) + 1
        if time.time() - last_eval > args.eval_every:  # train losses: means since the last evaluation
            record(step, time.time() - start, {k: sums[k] / counts[k] for k in sums})
            sums, counts = {}, {}
            last_eval = time.time()
    record(step, time.time() - start, {k: sums[k] / counts[k] for k in sums})
    save_sovits(model, args.out / f"{args.name}-last.pth", step=run.start_step + step)
    print(f"{args.name}: {step} steps in {time.time() - start:.0f} s, best select {run.best:.4f}", flush=True)


def channels_arg(text: str) -> list[int]:
    values = [int(x) for x in text.split(",")]
    if len(values) != 6 or values[0] != 1 or min(values) < 1:
        raise argparse.ArgumentTypeError("six comma-separated widths starting with 1, e.g. 1,8,16,32,64,64")
    return values


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    pk = sub.add_parser("pack", help="copy a training subset of an experiment folder into a small folder")
    pk.add_argument("--exp", type=Path, default=Path.home() / ".cache" / "autocompress-demo" / "exp",
                    help="experiment folder with codes (default: the build script's work dir's)")
    pk.add_argument("--out", type=Path, required=True)
    pk.add_argument("--items", type=positive_int, default=450, help="training items (random, seeded)")
    pk.add_argument("--eval-names", type=lambda t: t.split(","), default=None,
                    help="held-out item names, comma-separated (default: the shipped demo voice's)")
    pk.add_argument("--seed", type=int, default=1234)
    tr = sub.add_parser("train", help="train on a pack (a CUDA GPU; --device cpu for a smoke test)")
    tr.add_argument("--pack", type=Path, required=True)
    tr.add_argument("--out", type=Path, required=True)
    tr.add_argument("--init", type=Path, default=DEFAULT_SOVITS, help="SoVITS file to start from")
    tr.add_argument("--start-step", type=non_negative_int, default=None,
                    help="step count of --init, recorded in the files (default: the one --init records)")
    tr.add_argument("--resume", type=Path, default=None,
                    help="a <name>-state.pt to continue (its weights, discriminator, optimisers and step)")
    tr.add_argument("--name", default="gpu")
    tr.add_argument("--device", default="cuda")
    tr.add_argument("--minutes", type=float, default=7.0)
    tr.add_argument("--steps", type=positive_int, default=None, help="stop after this many steps instead of --minutes")
    tr.add_argument("--batch", type=positive_int, default=48)
    tr.add_argument("--lr", type=float, default=RECIPE.sovits_lr)
    tr.add_argument("--lr-final", type=float, default=3e-5)
    tr.add_argument("--decay", type=float, default=0.5, help="share of the run with a cosine decay to --lr-final")
    tr.add_argument("--disc-warmup", type=non_negative_int, default=200, help="discriminator-only steps first")
    tr.add_argument("--g-warmup", type=non_negative_int, default=300, help="generator steps of linear learning-rate ramp")
    tr.add_argument("--disc-channels", type=channels_arg, default=None,
                    help="period discriminator widths of a new run (default: the light ones; a resumed run keeps its own)")
    tr.add_argument("--mel-weight", type=float, default=RECIPE.mel_weight)
    tr.add_argument("--stft-weight", type=float, default=RECIPE.stft_weight)
    tr.add_argument("--max-noise-scale", type=float, default=RECIPE.max_noise_scale)
    tr.add_argument("--eval-every", type=float, default=45.0, help="seconds between held-out evaluations")
    tr.add_argument("--seed", type=int, default=1234)
    args = p.parse_args(argv)
    try:
        run(args)
    except (AutocompressError, OSError) as e:  # a bad folder or model file: one line, not a traceback
        sys.stderr.write(f"error: {e}\n")
        return 2
    return 0


def run(args: argparse.Namespace) -> None:
    if args.command == "pack":
        if args.eval_names is None:
            from autocompress.models.gpt_sovits.demo import demo_voice_manifest

            args.eval_names = demo_voice_manifest()["eval_names"]
        size = pack(args.exp, args.out, args.items, args.eval_names, args.seed)
        print(f"packed into {args.out}: {size / 1e6:.1f} MB")
    else:
        train(args)


if __name__ == "__main__":
    raise SystemExit(main())
