#!/usr/bin/env python3
"""Continue training the demo GPT on a CUDA GPU, from a packed copy of an experiment folder's codes.

The build script trains the demo GPT on this project's CPU at about two seconds a step. A lent
GPU runs many more, but it reaches nothing outside itself, receives a working tree of at most
64 MiB, and lacks the packages the build script imports (see ``gpu_sovits.py``). So, as for
the SoVITS, the work is split in two:

    python scripts/gpu_gpt.py pack --out .gpu_gpt_pack      # here: phone ids and codes, no audio
    python scripts/gpu_gpt.py train --pack .gpu_gpt_pack --out OUT --minutes 7   # on the GPU

``pack`` writes every coded item of an experiment folder as phone ids, codes and prompt codes
(the item's audio coded as a teacher prompt is, with 0.6 s of silence appended), plus what the
selection rule reads: the reference prompt and the phone ids of ``UNSEEN_TEXTS``. ``train``
needs torch and ``autocompress.models`` only. It trains with the build script's GPT recipe
(``training.gpt_loss`` with history noise, ``gpt_batch``'s joined rows, ``gpt_optimizer``,
``gpt_learning_rate``), evaluates the held-out items every ``--eval-every`` seconds with the
build script's rule (``training.gpt_select``) and writes:

- ``<name>-best.ckpt``: the best GPT in the shipped format (upstream ``.ckpt``, fp16);
- ``<name>-best.pt``: the same model in the format of the build script's ``train/gpt_best.pt``,
  so that ``--stage ship`` of a work dir can ship it;
- ``<name>-state.pt``: the whole state in the format of the build script's ``train/gpt_state.pt``
  (weights, optimiser, step, best score), rewritten at every evaluation: the CPU can continue a
  GPU run and a GPU run can continue the CPU's (``--resume``);
- ``<name>-last.ckpt`` and ``<name>-log.jsonl`` (one line per evaluation).

A new run starts from ``--init`` (default: the shipped demo GPT) with a new optimiser, so its
rate warms up again, as the build script's ``--init-from`` does; ``--new`` starts a GPT of
another size from random weights instead.
"""

from __future__ import annotations

import argparse
import csv
import json
import pickle
import random
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from autocompress.cli.argtypes import positive_int  # noqa: E402
from autocompress.exceptions import AutocompressError  # noqa: E402
from autocompress.models.gpt_sovits.checkpoint import checkpoint_step, load_gpt, save_gpt  # noqa: E402
from autocompress.models.gpt_sovits.config import GPTConfig  # noqa: E402
from autocompress.models.gpt_sovits.gpt import Text2SemanticGPT  # noqa: E402
from autocompress.models.gpt_sovits.training import (  # noqa: E402
    SELECT_RULES,
    UNSEEN_TEXTS,
    gpt_batch,
    gpt_greedy_checks,
    gpt_learning_rate,
    gpt_loss,
    gpt_optimizer,
    gpt_select,
    save_atomic,
)

PACK_TSV = "items.tsv"  # name, split, phone ids, codes, prompt codes (train items only)
PACK_META = "meta.json"  # the reference prompt and the unseen sentences
DEMO = REPO / "autocompress" / "assets" / "demo"
STATE_KEYS = frozenset({"model", "optimizer", "step", "start_step", "best_eval", "rng_seed", "config"})


# --------------------------------------------------------------------------- pack (here)


def _ints(t: Any) -> str:
    return " ".join(str(int(x)) for x in t)


def pack(exp: Path, out: Path, sovits_path: Path, eval_names: list[str], reference: str, standin_version: int,
         limit: int | None = None) -> int:
    """Write every coded item of ``exp`` (or the first ``limit`` training ones) into ``out``.

    Prompt codes come from ``sovits_path``'s codebook and the stand-in of ``standin_version``, as
    the build script's trainer makes them. Returns the bytes written.
    """
    from autocompress.models.gpt_sovits.checkpoint import load_sovits
    from autocompress.models.gpt_sovits.data import ExperimentFolder
    from autocompress.models.gpt_sovits.demo import demo_prompt_codes
    from autocompress.models.gpt_sovits.text import english_to_phones, phones_to_ids
    from autocompress.search.synth import code_limit

    folder = ExperimentFolder(exp, check_tensors=False)
    coded = [name for name in folder.names if folder[name].codes]
    missing = [name for name in [*eval_names, reference] if name not in coded]
    if missing:
        raise SystemExit(f"{exp}: no coded items named {', '.join(missing[:3])}")
    if reference in eval_names:
        raise SystemExit(f"the reference {reference} is one of the held-out items; hint: pick a training item")
    held = set(eval_names)
    train = [reference] + [name for name in coded if name not in held and name != reference]
    train = train[:limit] if limit is not None else train
    if out.exists():  # only an earlier pack is replaced: --out . must not delete a checkout
        if not (out / PACK_TSV).is_file():
            raise SystemExit(f"{out} exists and is not a pack (no {PACK_TSV}); hint: pass a new folder")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    sovits = load_sovits(sovits_path)
    ref_prompt: list[int] = []
    with (out / PACK_TSV).open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        total, done = len(train) + len(eval_names), 0
        for split, names in (("train", train), ("eval", eval_names)):
            for name in names:
                done += 1
                if done % 1000 == 0:  # about 12 s of coding prompts each here
                    print(f"pack: {done}/{total} items", flush=True)
                item = folder[name]
                prompt = _ints(demo_prompt_codes(sovits, item.load_wav(), standin_version)) if split == "train" else ""
                if name == reference:
                    ref_prompt = [int(c) for c in prompt.split()]
                w.writerow([Path(name).stem, split, _ints(phones_to_ids(list(item.phones), "v2")), _ints(item.codes),
                            prompt])  # fmt: skip
    unseen = []
    for text in UNSEEN_TEXTS:
        ids = phones_to_ids(english_to_phones(text), "v2")
        unseen.append({"text": text, "phones": ids, "limit": code_limit(len(ids))})
    meta = {"reference": Path(reference).stem, "reference_prompt": ref_prompt, "unseen": unseen,
            "standin_version": standin_version, "select_rule": SELECT_RULES["gpt"]}  # fmt: skip
    (out / PACK_META).write_text(json.dumps(meta), encoding="utf-8")
    return sum(p.stat().st_size for p in out.rglob("*") if p.is_file())


# --------------------------------------------------------------------------- train (on the GPU)


@dataclass
class Item:
    name: str
    phones: torch.Tensor  # [L] v2 ids
    codes: torch.Tensor  # [T25]
    prompt_codes: torch.Tensor | None  # the audio coded as a teacher prompt (training items)


@dataclass
class Pack:
    train: list[Item]
    eval: list[Item]
    reference: Item  # the first training item, whose prompt codes prompt every greedy check
    unseen: list[tuple[torch.Tensor, int]]  # phone ids and code limit of each UNSEEN_TEXTS sentence


def load_pack(folder: Path, device: torch.device) -> Pack:
    if not (folder / PACK_TSV).is_file() or not (folder / PACK_META).is_file():
        raise SystemExit(f"{folder}: not a pack (needs {PACK_TSV} and {PACK_META}); hint: run 'pack' first")

    def ids(text: str) -> torch.Tensor:
        return torch.tensor([int(x) for x in text.split()], dtype=torch.long, device=device)

    splits: dict[str, list[Item]] = {"train": [], "eval": []}
    with (folder / PACK_TSV).open(encoding="utf-8", newline="") as f:
        for name, split, phones, codes, prompt in csv.reader(f, delimiter="\t"):
            splits[split].append(Item(name, ids(phones), ids(codes), ids(prompt) if prompt else None))
    meta = json.loads((folder / PACK_META).read_text(encoding="utf-8"))
    if not splits["train"] or not splits["eval"] or splits["train"][0].name != meta["reference"]:
        raise SystemExit(f"{folder}: needs train and eval items, the reference first")
    unseen = [(torch.tensor(u["phones"], dtype=torch.long), int(u["limit"])) for u in meta["unseen"]]
    return Pack(splits["train"], splits["eval"], splits["train"][0], unseen)


@torch.no_grad()
def evaluate(model: Text2SemanticGPT, data: Pack) -> dict[str, float]:
    """The build script's held-out GPT metrics: cross-entropy of the held-out items, and how long
    greedy decoding runs as the GPT ships (``training.gpt_greedy_checks``)."""
    model.eval()
    ce = gpt_loss(model, *gpt_batch([[it] for it in data.eval]))[1]["ce"]
    ratios, runaway = gpt_greedy_checks(model, data.reference.phones, data.reference.prompt_codes,
                                        [(it.phones, it.codes.numel()) for it in data.eval], data.unseen)  # fmt: skip
    model.train()
    return gpt_select(ce, ratios, runaway)


def _cpu(obj: Any) -> Any:
    """``obj`` with every tensor moved to the CPU (a state saved here loads on a machine without CUDA)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_cpu(v) for v in obj)
    return obj


@dataclass
class Run:
    """The GPT, its optimiser and counts, as the build script's ``gpt_state.pt`` holds them."""

    model: Text2SemanticGPT
    opt: torch.optim.Optimizer
    step: int  # the total step count (the file's, then on)
    start_step: int  # where the learning-rate schedule's count begins
    best: float
    rng: random.Random

    def save(self, path: Path) -> None:
        """Write the resumable state (atomically: a run killed while saving keeps the last one)."""
        seed = self.rng.randrange(2**31)
        self.rng.seed(seed)
        save_atomic({"model": _cpu(self.model.state_dict()), "optimizer": _cpu(self.opt.state_dict()),
                     "step": self.step, "start_step": self.start_step, "best_eval": self.best, "rng_seed": seed,
                     "config": self.model.config.to_dict(), "select_rule": SELECT_RULES["gpt"]}, path)  # fmt: skip


def start_run(args: argparse.Namespace, device: torch.device) -> Run:
    """A new run from ``--init`` (new optimiser, the schedule counted from its step), or ``--resume``."""
    if args.new is not None and args.resume is not None:
        raise SystemExit("--new starts a new GPT and --resume continues one; pass one of them")
    if args.new is not None:  # a new GPT of another size, with --init's vocabulary and text side
        width, layers, heads = args.new
        config = load_gpt(args.init).config.replace(hidden_dim=width, n_head=heads, n_layer=layers, ffn_dim=4 * width)
        torch.manual_seed(args.seed)
        model = Text2SemanticGPT(config).to(device).train()
        return Run(model, gpt_optimizer(model.parameters()), 0, 0, float("inf"), random.Random(args.seed))
    if args.resume is None:
        model = load_gpt(args.init, map_location=device).train()
        step = checkpoint_step(args.init)
        return Run(model, gpt_optimizer(model.parameters()), step, step, float("inf"), random.Random(args.seed))
    try:
        state = torch.load(args.resume, map_location=device, weights_only=True)
    except (RuntimeError, pickle.UnpicklingError) as e:
        raise SystemExit(f"{args.resume}: not a training state ({str(e).splitlines()[0]})") from None
    if not isinstance(state, dict) or not STATE_KEYS <= state.keys():
        raise SystemExit(f"{args.resume}: not a GPT training state (no {', '.join(sorted(STATE_KEYS))})")
    model = Text2SemanticGPT(GPTConfig.from_dict(state["config"])).to(device).train()
    model.load_state_dict(state["model"])
    opt = gpt_optimizer(model.parameters())
    opt.load_state_dict(state["optimizer"])
    # a state saved under another selection rule cannot compare its best with ours
    best = float(state["best_eval"]) if state.get("select_rule") == SELECT_RULES["gpt"] else float("inf")
    return Run(model, opt, int(state["step"]), int(state["start_step"]), best, random.Random(int(state["rng_seed"])))


def train(args: argparse.Namespace) -> None:
    device = torch.device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = True
    args.out.mkdir(parents=True, exist_ok=True)
    data = load_pack(args.pack, device)
    run = start_run(args, device)
    torch.manual_seed(run.rng.randrange(2**31))
    model, opt, rng = run.model, run.opt, run.rng
    log_path = args.out / f"{args.name}-log.jsonl"

    def record(elapsed: float, parts: dict[str, float]) -> None:
        metrics = evaluate(model, data)
        improved = metrics["select"] < run.best
        if improved:
            run.best = metrics["select"]
            save_gpt(model, args.out / f"{args.name}-best.ckpt", epoch=run.step)
            save_atomic({"model": _cpu(model.state_dict()), "step": run.step, "eval": run.best, "metrics": metrics,
                         "config": model.config.to_dict()}, args.out / f"{args.name}-best.pt")  # fmt: skip
        lr = gpt_learning_rate(max(0, run.step - 1 - run.start_step), args.lr, args.halflife)  # the last step's
        line = {"step": run.step, "seconds": round(elapsed, 1), **metrics, "best": improved, "lr": lr,
                **{f"train_{k}": v for k, v in parts.items()}}  # fmt: skip
        with log_path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")
        print(json.dumps(line), flush=True)
        run.save(args.out / f"{args.name}-state.pt")

    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"{args.name}: {len(data.train)} train / {len(data.eval)} eval items, batch {args.batch}, "
          f"{model.config.hidden_dim} wide x {model.config.n_layer} layers, from step {run.step}"
          f"{' (resumed)' if args.resume else ''}, {where}", flush=True)  # fmt: skip
    record(0.0, {})
    start = last_eval = time.time()
    steps = 0
    sums: dict[str, float] = {}
    while (args.steps is None or steps < args.steps) and time.time() - start < args.minutes * 60:
        # half the rows join two utterances (the first as a prompt), as the build script's do
        rows = [rng.sample(data.train, 2 if rng.random() < 0.5 else 1) for _ in range(args.batch)]
        for g in opt.param_groups:
            g["lr"] = gpt_learning_rate(run.step - run.start_step, args.lr, args.halflife)
        loss, parts = gpt_loss(model, *gpt_batch(rows), args.history_noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        run.step += 1
        steps += 1
        for k, v in parts.items():
            sums[k] = sums.get(k, 0.0) + v
        sums["n"] = sums.get("n", 0.0) + 1
        if time.time() - last_eval > args.eval_every:  # train figures: means since the last evaluation
            record(time.time() - start, {k: v / sums["n"] for k, v in sums.items() if k != "n"})
            sums, last_eval = {}, time.time()
    if sums:
        record(time.time() - start, {k: v / sums["n"] for k, v in sums.items() if k != "n"})
    save_gpt(model, args.out / f"{args.name}-last.ckpt", epoch=run.step)
    print(f"{args.name}: {steps} steps in {time.time() - start:.0f} s, at step {run.step}, best select {run.best:.4f}",
          flush=True)  # fmt: skip


def size_arg(text: str) -> tuple[int, int, int]:
    try:
        width, layers, heads = (int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTH,LAYERS,HEADS such as 256,8,4, got {text!r}") from None
    if min(width, layers, heads) < 1 or width % heads:
        raise argparse.ArgumentTypeError(f"{text}: sizes must be >= 1 and the width a multiple of the heads")
    return width, layers, heads


def fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a share in [0, 1), got {text}")
    return value


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    pk = sub.add_parser("pack", help="write an experiment folder's phone ids and codes into a small folder")
    pk.add_argument("--exp", type=Path, default=Path.home() / ".cache" / "autocompress-demo" / "exp",
                    help="experiment folder with codes (default: the build script's work dir's)")
    pk.add_argument("--out", type=Path, required=True)
    pk.add_argument("--sovits", type=Path, default=DEMO / "demo-sovits.pth",
                    help="the SoVITS whose codebook codes the prompts (default: the shipped demo voice's)")
    pk.add_argument("--items", type=positive_int, default=None, help="training items (default: all)")
    tr = sub.add_parser("train", help="train on a pack (a CUDA GPU; --device cpu for a smoke test)")
    tr.add_argument("--pack", type=Path, required=True)
    tr.add_argument("--out", type=Path, required=True)
    tr.add_argument("--init", type=Path, default=DEMO / "demo-gpt.ckpt", help="GPT file to start from")
    tr.add_argument("--resume", type=Path, default=None,
                    help="a training state to continue: this script's <name>-state.pt or the build script's "
                         "train/gpt_state.pt")  # fmt: skip
    tr.add_argument("--new", type=size_arg, default=None, metavar="WIDTH,LAYERS,HEADS",
                    help="train a new GPT of this size from step 0 instead (FFN 4x the width; the shipped one is "
                         "192,6,4); a new GPT wants a higher --lr, such as 1e-3")  # fmt: skip
    tr.add_argument("--name", default="gpu")
    tr.add_argument("--device", default="cuda")
    tr.add_argument("--minutes", type=float, default=7.0)
    tr.add_argument("--steps", type=positive_int, default=None, help="stop after this many steps instead of --minutes")
    tr.add_argument("--batch", type=positive_int, default=64, help="rows per step (the CPU's is 16)")
    tr.add_argument("--lr", type=float, default=3e-4, help="peak learning rate")
    tr.add_argument("--halflife", type=float, default=3000.0, help="steps per halving of the learning rate")
    tr.add_argument("--history-noise", type=fraction, default=0.25,
                    help="share of history codes replaced by the GPT's own guesses")
    tr.add_argument("--eval-every", type=float, default=60.0, help="seconds between held-out evaluations")
    tr.add_argument("--seed", type=int, default=1234)
    args = p.parse_args(argv)
    try:
        if args.command == "pack":
            from autocompress.models.gpt_sovits.demo import demo_voice_manifest

            manifest = demo_voice_manifest()
            size = pack(args.exp, args.out, args.sovits, manifest["eval_names"], manifest["reference_name"],
                        int(manifest.get("standin_version", 1)), args.items)  # fmt: skip
            print(f"packed into {args.out}: {size / 1e6:.1f} MB")
        else:
            train(args)
    except (AutocompressError, OSError) as e:  # a bad folder or model file: one line, not a traceback
        sys.stderr.write(f"error: {e}\n")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
