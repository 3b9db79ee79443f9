"""Where the demo SoVITS loses DistillMOS: swap parts of its output with the Piper source's.

On the shipped held-out items, the SoVITS decodes each item's own codes (no GPT; noise scale
0, the demo's reference as style), so its output has the source's timing. Each variant below
takes one part of the signal from the output and the rest from the source, and DistillMOS
scores it at 16 kHz:

  stft        STFT magnitude of one with the phase of the other; Griffin-Lim of each magnitude;
              low-passed copies (the share of the score in the high band)
  world       WORLD vocoder parameters (F0, voicing, spectral envelope, aperiodicity) of the
              source with one of them taken from the output; the envelope also by band and by
              frame kind (voiced, unvoiced, silent)

``world`` needs ``pyworld`` (not a project dependency: ``pip install pyworld`` builds it).
Results are printed and written as JSON (``--out``). Measured on this machine; nothing is
projected. VOICE.md section 19 records a run.

  python scripts/demo_mos_gap.py --out /tmp/mos_gap.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torchaudio

from autocompress.models.gpt_sovits import ExperimentFolder, load_sovits, phones_to_ids, spectrogram
from autocompress.models.gpt_sovits.demo import demo_voice_manifest, demo_voice_paths

RATE = 16000  # DistillMOS's rate
N_FFT, HOP = 512, 128
FRAME_MS = 5.0  # WORLD frame period
SILENT_DB = 50.0  # frames this far below the loudest are "silent"
LOW_BAND_HZ = 4000.0


def decoded_pairs(root: Path | None = None) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, source, SoVITS output) at 16 kHz, cut to one length, for each held-out item."""
    paths = demo_voice_paths(root)
    manifest = demo_voice_manifest(root)
    sovits = load_sovits(paths.sovits_path).eval()
    folder = ExperimentFolder(paths.exp_dir)
    refer = spectrogram(folder[manifest["reference_name"]].load_wav())
    pairs = []
    for name in paths.eval_names:
        item = folder[name]
        src = item.load_wav()
        with torch.no_grad():
            codes = torch.tensor(item.codes)[None, None]
            ids = torch.tensor([phones_to_ids(item.phones, "v2")])
            out = sovits.decode(codes, ids, refer, noise_scale=0.0)[0, 0].float()
        s = torchaudio.functional.resample(src.float(), 32000, RATE).numpy()
        o = torchaudio.functional.resample(out, 32000, RATE).numpy()
        n = min(s.size, o.size)
        pairs.append((name, s[:n], o[:n]))
    return pairs


def swap_stft(magnitude_of: np.ndarray, phase_of: np.ndarray) -> np.ndarray:
    """The signal whose STFT has the magnitude of one and the phase of the other."""
    win = torch.hann_window(N_FFT)
    a = torch.stft(torch.from_numpy(magnitude_of), N_FFT, HOP, window=win, return_complex=True)
    b = torch.stft(torch.from_numpy(phase_of), N_FFT, HOP, window=win, return_complex=True)
    mixed = a.abs() * torch.exp(1j * b.angle())
    return torch.istft(mixed, N_FFT, HOP, window=win, length=magnitude_of.size).numpy()


def griffin_lim(x: np.ndarray, iters: int = 64) -> np.ndarray:
    """The signal rebuilt from its STFT magnitude alone (phase by Griffin-Lim)."""
    win = torch.hann_window(N_FFT)
    mag = torch.stft(torch.from_numpy(x), N_FFT, HOP, window=win, return_complex=True).abs()
    gl = torchaudio.transforms.GriffinLim(n_fft=N_FFT, hop_length=HOP, power=1.0, n_iter=iters)
    y = gl(mag).numpy()
    return np.pad(y, (0, max(0, x.size - y.size)))[: x.size]


def low_pass(x: np.ndarray, hz: float) -> np.ndarray:
    spec = np.fft.rfft(x)
    spec[np.fft.rfftfreq(x.size, 1 / RATE) > hz] = 0
    return np.fft.irfft(spec, x.size)


def stft_variants(s: np.ndarray, o: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "source": s,
        "output": o,
        "output magnitude, source phase": swap_stft(o, s),
        "source magnitude, output phase": swap_stft(s, o),
        "source, Griffin-Lim": griffin_lim(s),
        "output, Griffin-Lim": griffin_lim(o),
        "source below 4 kHz": low_pass(s, LOW_BAND_HZ),
        "output below 4 kHz": low_pass(o, LOW_BAND_HZ),
    }


def world_variants(s: np.ndarray, o: np.ndarray, stats: dict[str, list]) -> dict[str, np.ndarray]:
    """WORLD resyntheses with one parameter swapped; log-envelope differences go into ``stats``."""
    import pyworld as pw

    def analyse(x: np.ndarray, f0: np.ndarray | None = None):
        x = x.astype(np.float64)
        own, t = pw.harvest(x, RATE, frame_period=FRAME_MS)
        own = pw.stonemask(x, own, t, RATE)
        use = own if f0 is None else f0[: own.size]
        return own, pw.cheaptrick(x, use, t, RATE), pw.d4c(x, use, t, RATE)

    f0_s, sp_s, ap_s = analyse(s)
    f0_o, sp_o, ap_o = analyse(o)
    _, sp_o_at_s, _ = analyse(o, f0_s)  # the output's envelope, estimated at the source's pitch
    t = min(f0_s.size, f0_o.size, sp_o_at_s.shape[0])
    f0_s, sp_s, ap_s, f0_o, sp_o, ap_o, sp_o_at_s = (
        a[:t] for a in (f0_s, sp_s, ap_s, f0_o, sp_o, ap_o, sp_o_at_s))

    def synth(f0, sp, ap) -> np.ndarray:
        return pw.synthesize(*(np.ascontiguousarray(a) for a in (f0, sp, ap)), RATE, FRAME_MS).astype(np.float32)

    voiced = f0_s > 0
    level = 10 * np.log10(sp_s.mean(1) + 1e-12)
    silent = level < level.max() - SILENT_DB
    low = np.linspace(0, RATE / 2, sp_s.shape[1]) < LOW_BAND_HZ
    diff = np.log(sp_o_at_s + 1e-12) - np.log(sp_s + 1e-12)
    for kind, frames in (("voiced", voiced & ~silent), ("unvoiced", ~voiced & ~silent), ("silent", silent)):
        stats.setdefault(kind, []).append(diff[frames])
    return {
        "WORLD(source)": synth(f0_s, sp_s, ap_s),
        "WORLD(output)": synth(f0_o, sp_o, ap_o),
        "WORLD(source), output's F0 where both voiced": synth(np.where(voiced & (f0_o > 0), f0_o, f0_s), sp_s, ap_s),
        "WORLD(source), output's voicing": synth(np.where(f0_o > 0, f0_s, 0.0), sp_s, ap_s),
        "WORLD(source), output's aperiodicity": synth(f0_s, sp_s, ap_o),
        "WORLD(source), output's envelope": synth(f0_s, sp_o_at_s, ap_s),
        "WORLD(source), output's envelope below 4 kHz": synth(f0_s, np.where(low[None], sp_o_at_s, sp_s), ap_s),
        "WORLD(source), output's envelope above 4 kHz": synth(f0_s, np.where(low[None], sp_s, sp_o_at_s), ap_s),
        "WORLD(source), output's envelope in voiced frames": synth(f0_s, np.where(voiced[:, None], sp_o_at_s, sp_s), ap_s),
        "WORLD(source), output's envelope in unvoiced frames": synth(f0_s, np.where(voiced[:, None], sp_s, sp_o_at_s), ap_s),
    }


def envelope_summary(stats: dict[str, list]) -> dict[str, dict]:
    """Mean log(output / source) envelope per band, and its mean magnitude, per frame kind."""
    edges = [0, 500, 1000, 2000, 4000, 6000, RATE / 2 + 1]
    out = {}
    for kind, parts in stats.items():
        d = np.concatenate(parts)
        freqs = np.linspace(0, RATE / 2, d.shape[1])
        out[kind] = {
            "frames": int(d.shape[0]),
            "mean_abs_log_ratio": round(float(np.abs(d).mean()), 3),
            "mean_log_ratio_by_band": {f"{lo:.0f}-{min(hi, RATE / 2):.0f} Hz": round(float(d[:, (freqs >= lo) & (freqs < hi)].mean()), 3)
                                       for lo, hi in zip(edges, edges[1:])},
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="write the results here as JSON")
    parser.add_argument("--no-world", action="store_true", help="only the STFT variants")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    world = not args.no_world
    if world:
        try:
            import pyworld  # noqa: F401
        except ImportError:
            sys.exit("demo_mos_gap: the WORLD variants need pyworld (pip install pyworld), or pass --no-world")
    import distillmos

    mos_model = distillmos.ConvTransformerSQAModel().eval()
    scores: dict[str, list[float]] = {}
    stats: dict[str, list] = {}
    for name, s, o in decoded_pairs():
        variants = stft_variants(s, o)
        if world:
            variants |= world_variants(s, o, stats)
        for key, wav in variants.items():
            with torch.no_grad():
                scores.setdefault(key, []).append(float(mos_model(torch.from_numpy(np.asarray(wav, np.float32))[None])))
        print(name, "output", round(scores["output"][-1], 2), "source", round(scores["source"][-1], 2), flush=True)
    result = {"n_items": len(scores["source"]),
              "distillmos_mean": {k: round(float(np.mean(v)), 3) for k, v in scores.items()}}
    if world:
        result["envelope_log_ratio"] = envelope_summary(stats)
    for key, value in result["distillmos_mean"].items():
        print(f"{value:5.2f}  {key}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
