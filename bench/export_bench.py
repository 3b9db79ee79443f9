"""Bundle variants vs the fp32 PyTorch teacher, full-size GPT-SoVITS v2, same machine, same run.

Builds the v2 architecture with random weights (speed and size do not depend on the values),
exports it once and writes bundle variants, then measures every variant and the teacher in a
fresh subprocess each (so peak memory is that variant's own):

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
"""

from __future__ import annotations

import argparse
import json
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


def _voice():  # noqa: ANN202
    import torch

    from autocompress.models.gpt_sovits.config import gpt_v2, sovits_v2
    from autocompress.models.gpt_sovits.gpt import Text2SemanticGPT
    from autocompress.models.gpt_sovits.sovits import SynthesizerTrn
    from autocompress.models.gpt_sovits.voice import Voice

    torch.manual_seed(0)
    gpt = Text2SemanticGPT(gpt_v2()).eval()
    sovits = SynthesizerTrn(sovits_v2(), include_enc_q=False).eval()
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


# --------------------------------------------------------------------------- measure (subprocess)


def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure_torch(out: Path, threads: int, tokens: int, repeats: int) -> dict[str, float]:
    import torch

    torch.set_num_threads(threads)
    voice = _voice()
    state = torch.load(out / "teacher.pt", weights_only=True)
    voice.gpt.load_state_dict(state["gpt"])
    voice.sovits.load_state_dict(state["sovits"])
    gpt, sovits = voice.gpt, voice.sovits
    item = _inputs()[0]
    phones = torch.from_numpy(item.phones)[None]
    bert = torch.from_numpy(item.bert_features())[None]
    prompt = torch.from_numpy(item.prompt_codes)[None]
    eos = gpt.config.eos

    def run_gpt() -> tuple[float, float]:
        with torch.no_grad():
            t0 = time.perf_counter()
            logits, cache = gpt.prefill(phones, bert, prompt, phones.shape[1] + prompt.shape[1] + tokens)
            t1 = time.perf_counter()
            for _ in range(tokens):
                token = logits[:, :eos].argmax(-1, keepdim=True)
                logits = gpt.decode_step(token, cache, cache.length)
            t2 = time.perf_counter()
        return t1 - t0, (t2 - t1) / tokens

    codes = torch.randint(0, 1024, (1, 1, SOVITS_CODES), generator=torch.Generator().manual_seed(1))
    text = torch.from_numpy(item.text)[None]
    refer = torch.from_numpy(item.ref_spec)[None]

    def run_sovits(n_codes: int) -> float:
        with torch.no_grad():
            t0 = time.perf_counter()
            sovits.decode(codes[..., :n_codes], text, refer, noise_scale=0.5)
            return time.perf_counter() - t0

    return _summarise(run_gpt, run_sovits, tokens, repeats, sovits.config.samples_per_frame * 2 / 32000) | {
        "bytes": float(
            sum(t.numel() * t.element_size() for m in (gpt, sovits) for t in m.state_dict().values())
        ),
    }


def measure_bundle(folder: Path, threads: int, tokens: int, repeats: int) -> dict[str, float]:
    from autocompress.runtime import BundleRunner, SamplingConfig

    runner = BundleRunner(folder, prefer_gpu=False, threads=threads)
    item = _inputs()[0]
    greedy = SamplingConfig(top_k=1, eos_ban_steps=tokens + 1)  # never stop early
    rng_codes = np.random.default_rng(1).integers(0, 1024, SOVITS_CODES)

    def run_gpt() -> tuple[float, float]:
        t0 = time.perf_counter()
        runner.generate(item, greedy, max_new_tokens=1)
        t1 = time.perf_counter()
        out = runner.generate(item, greedy, max_new_tokens=tokens + 1)
        t2 = time.perf_counter()
        assert out.tokens.size == tokens + 1
        return t1 - t0, ((t2 - t1) - (t1 - t0)) / tokens

    def run_sovits(n_codes: int) -> float:
        runner._styles.clear()  # time the style graph too, as the teacher's decode does
        t0 = time.perf_counter()
        runner.vocode(rng_codes[:n_codes], item.text, runner.style(item.ref_spec), 0.5)
        return time.perf_counter() - t0

    return _summarise(run_gpt, run_sovits, tokens, repeats, runner.samples_per_code / runner.sampling_rate)


def _summarise(run_gpt, run_sovits, tokens: int, repeats: int, seconds_per_code: float) -> dict[str, float]:  # noqa: ANN001
    run_gpt()
    run_sovits(SOVITS_CODES)  # warm-up
    gpt = [run_gpt() for _ in range(repeats)]
    prefill_s = statistics.median(g[0] for g in gpt)
    per_token_s = statistics.median(g[1] for g in gpt)
    sovits_s = statistics.median(run_sovits(SOVITS_CODES) for _ in range(repeats))
    e2e_sovits_s = statistics.median(run_sovits(tokens) for _ in range(max(1, repeats // 2)))
    audio_s = tokens * seconds_per_code
    return {
        "gpt_ms_per_token": 1000 * per_token_s,
        "gpt_prefill_ms": 1000 * prefill_s,
        "sovits_rtf": sovits_s / (SOVITS_CODES * seconds_per_code),
        "e2e_rtf": (prefill_s + tokens * per_token_s + e2e_sovits_s) / audio_s,
        "peak_rss_mb": _peak_rss_mb(),
    }


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
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--skip-build", action="store_true", help="reuse bundles already in --out")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # internal: one measurement subprocess
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="export-bench."))

    if args.measure:
        if args.measure == "torch-fp32":
            result = measure_torch(out, args.threads, args.tokens, args.repeats)
        else:
            result = measure_bundle(out / args.measure, args.threads, args.tokens, args.repeats)
        print(json.dumps(result))
        return 0

    built = {} if args.skip_build else build(out, args.exporter, args.tokens, args.threads, args.variants)
    if args.skip_build:
        built = json.loads((out / "built.json").read_text())
    else:
        (out / "built.json").write_text(json.dumps(built))
    results = {}
    for name in ["torch-fp32", *args.variants]:
        cmd = [sys.executable, __file__, "--measure", name, "--out", str(out), "--threads", str(args.threads),
               "--tokens", str(args.tokens), "--repeats", str(args.repeats)]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            print(f"{name}: measurement failed:\n{proc.stderr[-2000:]}")
            continue
        results[name] = json.loads(proc.stdout.strip().splitlines()[-1])
        if name != "torch-fp32":
            results[name]["bytes"] = built[name]["bytes"]
        print(f"measured {name}: {results[name]}")
    report(results, built)
    print(f"\nwork folder: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
