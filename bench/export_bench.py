"""Bundle variants vs the fp32 PyTorch teacher, full-size GPT-SoVITS v2, same machine, same run.

Builds the v2 architecture with random weights (speed and size do not depend on the values),
exports it once and writes bundle variants, then times every variant and the teacher in one
process, interleaved round by round (medians), and measures peak memory in a fresh subprocess
per variant:

- GPT decode, ms per token (steps after the prefill; EOS banned so every run is N tokens)
- GPT prefill, ms
- SoVITS decode real-time factor (style + enc_p + flow + dec for 100 codes = 4 s of audio)
- end-to-end real-time factor (prefill + N tokens + SoVITS for N codes)
- weight bytes (teacher: parameters and buffers of the loaded fp32 models; bundle: graph and
  weight files)
- peak RSS (VmHWM of the measuring process)

Ratios are printed against the teacher measured in the same run. Compass: >= 4x faster GPT
decode per token, >= 2x faster SoVITS decode, <= 15 % of fp32 weight bytes for the best CPU
bundle.

    python bench/export_bench.py                      # dynamo export, 2 threads, 100 tokens
    python bench/export_bench.py --exporter legacy --threads 2 --tokens 100 --out /tmp/bench
    python bench/export_bench.py --small --exporter legacy --tokens 5 --rounds 1   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# Variant name -> (target, per-group precisions).
VARIANTS: dict[str, tuple[str | None, dict[str, str]]] = {
    "onnx-fp32": (None, {g: "fp32" for g in ("gpt", "ref_enc", "enc_p", "flow", "dec")}),
    "cpu-int8": ("cpu", {g: "int8" for g in ("gpt", "ref_enc", "enc_p", "flow", "dec")}),
    "cpu-best": ("cpu", {"gpt": "int4", "ref_enc": "int8", "enc_p": "int8", "flow": "int8", "dec": "int8"}),
    "small-w4": (None, {g: "int4" for g in ("gpt", "ref_enc", "enc_p", "flow", "dec")}),
}
PROMPT_PHONES, TEXT_PHONES, PROMPT_CODES, REF_FRAMES = 20, 40, 75, 150  # 3 s reference
SOVITS_CODES = 100  # 4 s of audio


SMALL = False  # --small: the tiny configs (a smoke run in a minute or two), not full-size v2


def _voice():  # noqa: ANN202
    import torch

    from autocompress.models.gpt_sovits.config import gpt_tiny, gpt_v2, sovits_tiny, sovits_v2
    from autocompress.models.gpt_sovits.gpt import Text2SemanticGPT
    from autocompress.models.gpt_sovits.sovits import SynthesizerTrn
    from autocompress.models.gpt_sovits.voice import Voice

    torch.manual_seed(0)
    gpt = Text2SemanticGPT(gpt_tiny() if SMALL else gpt_v2()).eval()
    sovits = SynthesizerTrn(sovits_tiny() if SMALL else sovits_v2(), include_enc_q=False).eval()
    with torch.no_grad():
        for name, p in sovits.flow.named_parameters():
            if ".post." in f".{name}":
                p.normal_(0.0, 0.02)  # upstream zero-initialises these; trained flows are not identities
    return Voice(gpt, sovits)


def _inputs(n: int = 2):  # noqa: ANN202
    from autocompress.runtime.inputs import SynthInput

    rng = np.random.default_rng(0)
    return [
        SynthInput(
            prompt_phones=rng.integers(0, 700, PROMPT_PHONES),
            text=rng.integers(0, 700, TEXT_PHONES),
            prompt_codes=rng.integers(0, 1024, PROMPT_CODES),
            ref_spec=np.abs(rng.standard_normal((1025, REF_FRAMES))).astype(np.float32),
        )
        for _ in range(n)
    ]


# --------------------------------------------------------------------------- build


def build(out: Path, exporter: str, tokens: int, threads: int, variants: list[str]) -> dict[str, dict]:
    import torch

    from autocompress.export import VoiceExport

    out.mkdir(parents=True, exist_ok=True)
    voice = _voice()
    torch.save({"gpt": voice.gpt.state_dict(), "sovits": voice.sovits.state_dict()}, out / "teacher.pt")
    built = {}
    t0 = time.perf_counter()
    with VoiceExport(voice, _inputs(), exporter=exporter, max_tokens=tokens, work_parent=out) as export:
        print(f"exported 6 graphs in {time.perf_counter() - t0:.0f} s ({sorted(set(export.exporters.values()))})")
        for name in variants:
            target, precisions = VARIANTS[name]
            t1 = time.perf_counter()
            bundle = export.bundle(None, out / name, target, precisions=precisions, n_samples=1, threads=threads)
            used = {g: m.used for g, m in bundle.manifest.modules.items()}
            fallbacks = {g: [f["precision"] for f in m.fallbacks] for g, m in bundle.manifest.modules.items() if m.fallbacks}
            print(f"bundle {name}: {time.perf_counter() - t1:.0f} s, used {used}, fallbacks {fallbacks or 'none'}")
            built[name] = {"used": used, "fallbacks": fallbacks, "bytes": bundle.manifest.metric("file_bytes_onnx_total").value}
    return built


# --------------------------------------------------------------------------- measure


class _Subject:
    """One thing to time: ``gpt()`` -> (prefill s, s per token), ``sovits(n_codes)`` -> s."""

    seconds_per_code = 1280 / 32000


class _TorchTeacher(_Subject):
    def __init__(self, out: Path, threads: int, tokens: int) -> None:
        import torch

        torch.set_num_threads(threads)
        voice = _voice()
        state = torch.load(out / "teacher.pt", weights_only=True)
        voice.gpt.load_state_dict(state["gpt"])
        voice.sovits.load_state_dict(state["sovits"])
        self.torch, self.gpt_model, self.sovits_model, self.tokens = torch, voice.gpt, voice.sovits, tokens
        item = _inputs()[0]
        self.phones = torch.from_numpy(item.phones)[None]
        self.bert = torch.from_numpy(item.bert_features())[None]
        self.prompt = torch.from_numpy(item.prompt_codes)[None]
        self.text = torch.from_numpy(item.text)[None]
        self.refer = torch.from_numpy(item.ref_spec)[None]
        self.codes = torch.randint(0, 1024, (1, 1, SOVITS_CODES), generator=torch.Generator().manual_seed(1))
        self.bytes = float(
            sum(t.numel() * t.element_size() for m in (voice.gpt, voice.sovits) for t in m.state_dict().values())
        )

    def gpt(self) -> tuple[float, float]:
        gpt, eos = self.gpt_model, self.gpt_model.config.eos
        with self.torch.no_grad():
            t0 = time.perf_counter()
            logits, cache = gpt.prefill(self.phones, self.bert, self.prompt, self.phones.shape[1] + self.prompt.shape[1] + self.tokens)
            t1 = time.perf_counter()
            for _ in range(self.tokens):
                logits = gpt.decode_step(logits[:, :eos].argmax(-1, keepdim=True), cache, cache.length)
            t2 = time.perf_counter()
        return t1 - t0, (t2 - t1) / self.tokens

    def sovits(self, n_codes: int) -> float:
        with self.torch.no_grad():
            t0 = time.perf_counter()
            self.sovits_model.decode(self.codes[..., :n_codes], self.text, self.refer, noise_scale=0.5)
            return time.perf_counter() - t0


class _Bundle(_Subject):
    def __init__(self, folder: Path, threads: int, tokens: int, runner=None) -> None:  # noqa: ANN001
        from autocompress.runtime import BundleRunner, SamplingConfig

        self.runner = runner or BundleRunner(folder, prefer_gpu=False, threads=threads)
        self.item = _inputs()[0]
        self.greedy = SamplingConfig(top_k=1, eos_ban_steps=tokens + 1)  # never stop early
        self.codes = np.random.default_rng(1).integers(0, 1024, SOVITS_CODES)
        self.tokens = tokens
        self.prefill_s = float("nan")
        prefill = self.runner.gpt._prefill

        def timed_prefill(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            t0 = time.perf_counter()
            try:
                return prefill(*args, **kwargs)
            finally:
                self.prefill_s = time.perf_counter() - t0

        # The prefill is timed inside the run it belongs to: the decode steps are that run's time
        # less its own prefill, never less another run's (which made small runs come out negative).
        self.runner.gpt._prefill = timed_prefill

    def gpt(self) -> tuple[float, float]:
        t0 = time.perf_counter()
        out = self.runner.generate(self.item, self.greedy, max_new_tokens=self.tokens + 1)
        total = time.perf_counter() - t0
        assert out.tokens.size == self.tokens + 1
        return self.prefill_s, (total - self.prefill_s) / self.tokens

    def sovits(self, n_codes: int) -> float:
        self.runner._styles.clear()  # time the style graph too, as the teacher's decode does
        t0 = time.perf_counter()
        self.runner.vocode(self.codes[:n_codes], self.item.text, self.runner.style(self.item.ref_spec), 0.5)
        return time.perf_counter() - t0


def time_all(out: Path, names: list[str], threads: int, tokens: int, rounds: int) -> dict[str, dict[str, float]]:
    """Time every subject in one process, interleaved round by round (medians per subject).

    Interleaving spreads changes of the machine's load over all subjects alike.
    """
    subjects: dict[str, _Subject] = {"torch-fp32": _TorchTeacher(out, threads, tokens)}
    subjects.update({name: _Bundle(out / name, threads, tokens) for name in names})
    samples: dict[str, dict[str, list[float]]] = {n: {"prefill": [], "token": [], "sovits": [], "sovits_e2e": []} for n in subjects}
    for subject in subjects.values():  # warm-up
        subject.gpt()
        subject.sovits(SOVITS_CODES)
    order = list(subjects)
    for r in range(rounds):
        for name in order[r % len(order):] + order[: r % len(order)]:
            subject = subjects[name]
            prefill, per_token = subject.gpt()
            samples[name]["prefill"].append(prefill)
            samples[name]["token"].append(per_token)
            samples[name]["sovits"].append(subject.sovits(SOVITS_CODES))
            samples[name]["sovits_e2e"].append(subject.sovits(tokens))
    results = {}
    for name, s in samples.items():
        med = {k: statistics.median(v) for k, v in s.items()}
        audio_s = tokens * _Subject.seconds_per_code
        results[name] = {
            "gpt_ms_per_token": 1000 * med["token"],
            "gpt_prefill_ms": 1000 * med["prefill"],
            "sovits_rtf": med["sovits"] / (SOVITS_CODES * _Subject.seconds_per_code),
            "e2e_rtf": (med["prefill"] + tokens * med["token"] + med["sovits_e2e"]) / audio_s,
        }
    results["torch-fp32"]["bytes"] = subjects["torch-fp32"].bytes  # type: ignore[attr-defined]
    return results


def peak_memory(out: Path, name: str, threads: int, tokens: int) -> float:
    """Peak RSS (MB) of a fresh process that loads one subject and synthesises once."""
    subject = _TorchTeacher(out, threads, tokens) if name == "torch-fp32" else _Bundle(out / name, threads, tokens)
    subject.gpt()
    subject.sovits(tokens)
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _child(args: list[str]) -> dict:
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"measurement {args[1:3]} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- report


def report(results: dict[str, dict[str, float]], built: dict[str, dict]) -> None:
    base = results["torch-fp32"]
    print()
    print(f"{'variant':<12} {'ms/token':>9} {'prefill ms':>10} {'SoVITS RTF':>10} {'e2e RTF':>8} {'MB':>8} {'peak RSS MB':>11}")
    for name, r in results.items():
        print(
            f"{name:<12} {r['gpt_ms_per_token']:9.2f} {r['gpt_prefill_ms']:10.1f} {r['sovits_rtf']:10.3f} "
            f"{r['e2e_rtf']:8.3f} {r['bytes'] / 1e6:8.1f} {r['peak_rss_mb']:11.0f}"
        )
    print("\nratios vs torch-fp32 (speed-up: teacher time / variant time; bytes: variant / teacher)")
    print(f"{'variant':<12} {'GPT decode':>10} {'prefill':>8} {'SoVITS':>8} {'e2e':>8} {'bytes':>8} {'peak RSS':>9}")
    for name, r in results.items():
        print(
            f"{name:<12} {base['gpt_ms_per_token'] / r['gpt_ms_per_token']:9.2f}x "
            f"{base['gpt_prefill_ms'] / r['gpt_prefill_ms']:7.2f}x {base['sovits_rtf'] / r['sovits_rtf']:7.2f}x "
            f"{base['e2e_rtf'] / r['e2e_rtf']:7.2f}x {100 * r['bytes'] / base['bytes']:7.1f}% "
            f"{100 * r['peak_rss_mb'] / base['peak_rss_mb']:8.0f}%"
        )
    print("\ncompass: GPT decode >= 4x, SoVITS >= 2x, best CPU bundle <= 15 % of fp32 bytes")
    for name, info in built.items():
        print(f"{name}: precisions {info['used']}, fallbacks {info['fallbacks'] or 'none'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="work folder (default: a new temporary one)")
    parser.add_argument("--exporter", default="dynamo", choices=("dynamo", "legacy"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds (medians)")
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--skip-build", action="store_true", help="reuse bundles already in --out")
    parser.add_argument("--small", action="store_true", help="tiny configs instead of full-size v2 (a smoke run)")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # internal: peak memory of one subject
    parser.add_argument("--time-all", action="store_true", help=argparse.SUPPRESS)  # internal: timing process
    args = parser.parse_args(argv)
    if args.skip_build and args.out is None:
        parser.error("--skip-build reuses the bundles of an earlier run: name its work folder with --out")
    global SMALL
    SMALL = args.small
    temporary = args.out is None and not (args.measure or args.time_all)
    out = args.out or Path(tempfile.mkdtemp(prefix="export-bench."))

    if args.measure:  # one fresh process per subject, for its peak memory
        print(json.dumps({"peak_rss_mb": peak_memory(out, args.measure, args.threads, args.tokens)}))
        return 0
    if args.time_all:
        print(json.dumps(time_all(out, args.variants, args.threads, args.tokens, args.rounds)))
        return 0

    built = {} if args.skip_build else build(out, args.exporter, args.tokens, args.threads, args.variants)
    if args.skip_build:
        built = json.loads((out / "built.json").read_text())
    else:
        (out / "built.json").write_text(json.dumps(built))
    common = ["--out", str(out), "--threads", str(args.threads), "--tokens", str(args.tokens),
              *(["--small"] if args.small else [])]
    timing = _child([__file__, "--time-all", "--rounds", str(args.rounds), "--variants", *args.variants, *common])
    results = {name: timing[name] for name in ["torch-fp32", *args.variants]}
    for name in results:
        results[name].update(_child([__file__, "--measure", name, *common]))
        if name != "torch-fp32":
            results[name]["bytes"] = built[name]["bytes"]
    from autocompress.score.metric import host_device

    where = f"{host_device().rsplit(',', 1)[0]}, {args.threads} thread{'' if args.threads == 1 else 's'}"
    print(f"\nall figures measured here, on {where}; models: {'tiny' if args.small else 'full-size v2'}")
    report(results, built)
    if temporary:
        shutil.rmtree(out, ignore_errors=True)  # bundles of a full-size voice: more than a GB
    else:
        print(f"\nwork folder: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
