"""What scoring costs, per second of audio, against baselines measured in the same run.

Baselines: the audio's own duration (a ratio of 1.0 means scoring takes real time) and a
noise-free SoVITS decode of the same number of seconds by a full-size v2 SoVITS (random
weights; speed does not depend on them). Each scorer is warmed up (models loaded) first;
load times are printed apart. Projection costs (meta-device profiling, once per model
structure, and the roofline per target) are printed per call.

    python bench/score_bench.py [--seconds 4] [--repeats 3] [--small]

``--small`` uses the tiny SoVITS/GPT configs (fast, for a smoke run).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch


# The rows a search trial computes for each sentence (``compare_audio`` with the search's
# reference: DistillMOS and speaker vectors, no DNSMOS). MCD is always DTW-aligned; the other
# distances only when the student's length differs, so their plain rows are the cheaper case.
TRIAL_ROWS = ("log_mel_l1", "mrstft", "mcd_db (DTW)", "stoi", "distillmos", "speaker_cos")


def ratio(x: float) -> str:
    """A ratio with two significant places below 10 (a cheap step must not print as 0)."""
    return f"{x:.2g}" if x < 10 else f"{x:.0f}"


def speech(seconds: float) -> tuple[np.ndarray, int]:
    """About ``seconds`` of espeak-ng speech (or a formant signal when espeak-ng is missing)."""
    text = ("The quick brown fox jumps over the lazy dog, then rests beside the quiet river "
            "while the evening light fades slowly over the hills.")
    if shutil.which("espeak-ng"):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "s.wav"
            subprocess.run(["espeak-ng", "-w", str(path), text], check=True, capture_output=True)
            x, sr = sf.read(path, dtype="float32")
    else:
        sr = 32000
        t = np.arange(int(seconds * sr)) / sr
        pulses = np.sign(np.sin(2 * np.pi * 120 * t))
        x = (pulses * np.clip(np.sin(2 * np.pi * 2 * t), 0, None)).astype(np.float32)
    n = int(seconds * sr)
    x = np.tile(x, int(np.ceil(n / x.size)))[:n]
    return x, sr


def timed(fn, repeats: int) -> float:  # noqa: ANN001
    """Median wall time of ``fn`` over ``repeats`` calls, seconds."""
    from autocompress.score import measure

    return measure(fn, warmup=0, repeats=repeats).median_s


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--small", action="store_true", help="tiny model configs")
    args = parser.parse_args(argv)

    from autocompress.models.gpt_sovits.config import gpt_tiny, gpt_v2, sovits_tiny, sovits_v2
    from autocompress.models.gpt_sovits.gpt import Text2SemanticGPT
    from autocompress.models.gpt_sovits.sovits import SynthesizerTrn
    from autocompress.models.gpt_sovits.voice import Voice
    from autocompress.score import (
        build_reference,
        get_scorer,
        log_mel_l1,
        mel_cepstral_distortion,
        mrstft_distance,
        profile_voice,
        project_voice,
        stoi,
    )
    from autocompress.score.metric import host_device
    from autocompress.score.voice_cost import UtteranceShape
    from autocompress.targets import load_target

    x, sr = speech(args.seconds)
    seconds = x.size / sr
    rng = np.random.default_rng(0)
    student = (x + 0.01 * rng.standard_normal(x.size)).astype(np.float32)
    slower = np.interp(np.arange(0, x.size - 1, 0.96), np.arange(x.size), x).astype(np.float32)
    print(f"all figures measured here, on {host_device()}; audio: {seconds:.2f} s at {sr} Hz")

    # ---- baseline: SoVITS decode of the same duration
    torch.manual_seed(0)
    sv_cfg = sovits_tiny() if args.small else sovits_v2()
    sovits = SynthesizerTrn(sv_cfg, include_enc_q=False).eval()
    n_codes = int(round(seconds * 25))
    codes = torch.randint(0, 1024, (1, 1, n_codes))
    text = torch.randint(1, 300, (1, int(seconds * 12)))
    refer = torch.rand(1, sv_cfg.spec_channels, 150)
    with torch.no_grad():
        sovits.decode(codes, text, refer, noise_scale=0.0)
        decode_s = timed(lambda: sovits.decode(codes, text, refer, noise_scale=0.0), args.repeats)
    decode_per_s = decode_s / seconds
    size = "tiny" if args.small else "v2"
    print(f"baseline SoVITS decode ({size}): {decode_per_s * 1e3:.1f} ms per audio second")

    # ---- load the scorers once
    loads = {}
    for name in ("distillmos", "dnsmos", "speaker"):
        t0 = time.perf_counter()
        scorer = get_scorer(name)
        if name == "speaker":
            scorer.embed(x[: int(sr * 2)], sr)
        else:
            scorer.score(x[: int(sr * 2)], sr)
        loads[name] = time.perf_counter() - t0
    first = min(seconds, 2.0)
    print(f"first use (load + {first:g} s of audio): "
          + ", ".join(f"{k} {v:.1f} s = {ratio(v / decode_s)} x the decode" for k, v in loads.items()))
    reference = build_reference([x], sr, mos=True, dnsmos=True, speaker=True)

    rows = {
        "log_mel_l1": lambda: log_mel_l1(x, student, sr),
        "log_mel_l1 (DTW)": lambda: log_mel_l1(x, slower, sr),
        "mrstft": lambda: mrstft_distance(x, student, sr),
        "mrstft (DTW)": lambda: mrstft_distance(x, slower, sr),
        "mcd_db (DTW)": lambda: mel_cepstral_distortion(x, student, sr),
        "stoi": lambda: stoi(x, student, sr),
        "stoi (DTW)": lambda: stoi(x, slower, sr),
        "distillmos": lambda: get_scorer("distillmos").score(student, sr),
        "dnsmos": lambda: get_scorer("dnsmos").score(student, sr),
        "speaker_cos": lambda: get_scorer("speaker").embed(student, sr),
    }
    print(f"\n{'metric':20s} {'ms / audio s':>13s} {'x SoVITS decode':>16s} {'x real time':>12s}")
    per_s = {}
    for name, fn in rows.items():
        per_s[name] = timed(fn, args.repeats) / seconds
        print(f"{name:20s} {per_s[name] * 1e3:13.1f} {per_s[name] / decode_per_s:16.2f} {per_s[name]:12.3f}")
    total = sum(per_s[name] for name in TRIAL_ROWS)
    print(f"{'a trial (see below)':20s} {total * 1e3:13.1f} {total / decode_per_s:16.2f} {total:12.3f}")
    print(f"a trial: {', '.join(TRIAL_ROWS)} (what the search scores per sentence; no dnsmos)")
    assert reference.embeddings is not None

    # ---- projection costs, per call
    voice = Voice(Text2SemanticGPT(gpt_tiny() if args.small else gpt_v2()).eval(), sovits)
    t0 = time.perf_counter()
    prof = profile_voice(voice, UtteranceShape(n_tokens=n_codes))
    profile_s = time.perf_counter() - t0
    rtx = load_target("rtx3060")
    project_s = timed(lambda: project_voice(voice, rtx, {"gpt": 8}, profile=prof), args.repeats)
    print(f"\nprofile_voice (meta device, once per structure): {profile_s:.2f} s = "
          f"{profile_s / decode_s:.2f} x one SoVITS decode of the audio")
    print(f"project_voice (per target and plan): {project_s * 1e3:.0f} ms = {ratio(project_s / decode_s)} x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
