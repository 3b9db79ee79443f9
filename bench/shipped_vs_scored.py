"""Does an exported bundle sound like the trial the search scored?

For each bundle of an export folder (or each trial given with ``--trials``, exported here first
into ``--extra-out``), this measures three things on the study's held-out sentences:

1. ``torch``: the trial's student rebuilt from its checkpoint, fake quantization put back and
   calibrated as :func:`autocompress.search.scoring.score_quality` does, scored again (does the
   stored figure reproduce?);
2. ``bundle``: the bundle's onnxruntime runner speaking the same sentences the way the search
   scores (greedy GPT, repetition penalty 1.35, noise scale 0, the same code limit), scored with
   the same scorers against the same teacher reference;
3. ``same codes``: the bundle's SoVITS graphs vocoding the torch student's own codes, compared
   with the torch waveform (SNR and log-mel L1): what is left once greedy-path divergence is
   taken out;
4. ``gpt logits``: the bundle's GPT graphs and the scored student's GPT, both fed the torch
   student's codes (each with its own cache): SNR of the logits and top-1 agreement per step;
5. ``int8 parity``: each int8 graph's check in the bundle's manifest (lowest output SNR against
   the torch model it was judged against, the scored one where the export had the trial's int8
   ranges, and against the plain one; whether it passed or its group fell back).

With ``--student-ranges``, the ``--trials`` exported here take the scored student's int8
activation ranges (calibrated again as the search's scoring does); without it they get the
export's own calibration, as a stripped student saved by the search does.

Usage::

    python bench/shipped_vs_scored.py --storage sqlite:////tmp/sv/db.sqlite --study demo \\
        --artifacts /tmp/sv/art --exports /tmp/sv/exp [--trials 2 3 --extra-out /tmp/sv/extra] [--student-ranges]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch


def _inputs(cache):  # noqa: ANN001, ANN202
    from autocompress.search.bundles import synth_input

    return [synth_input(cache.prompt, s) for s in cache.sentences]


def _fake_quant_student(src: Path, plan):  # noqa: ANN001, ANN202
    """The saved (stripped) student with the plan's fake quantization attached again."""
    from autocompress.compress.fake_quant import add_fake_quant_
    from autocompress.models.gpt_sovits.voice import group_modules
    from autocompress.search.pipeline import load_student

    voice = load_student(src)
    for group in ("gpt", "enc_p", "flow", "dec", "ref_enc"):
        quant = plan.group(group).quant
        if quant.is_identity:
            continue
        model = voice.gpt if group == "gpt" else voice.sovits
        for module in group_modules(model, group):
            add_fake_quant_(module, quant)
    return voice


def _scored_student(src: Path, plan, cache, target):  # noqa: ANN001, ANN202
    """The saved student with fake quantization back on, calibrated and scored as the search scored it."""
    from autocompress.search.scoring import score_quality

    student = _fake_quant_student(src, plan)
    return student, score_quality(student, plan, cache, target.symmetric_int8)


def _gpt_logits(gpt, runner, item, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
    """Logits of every step of the scored student's GPT and of the bundle's GPT graphs, both fed
    ``codes`` after the prompt (teacher-forced, each with its own KV cache): ``[steps, V]`` each."""
    from torch.nn.utils import parametrize

    from autocompress.export.gpt_graphs import GPTDecodeGraph, GPTPrefillGraph

    feeds = {"phones": item.phones.reshape(1, -1).astype(np.int64), "bert": item.bert_features()[None].astype(np.float32),
             "prompt": item.prompt_codes.reshape(1, -1).astype(np.int64)}  # fmt: skip
    prefill, decode = runner.sessions["gpt_prefill"], runner.sessions["gpt_decode"]
    half = {i.name: i.type == "tensor(float16)" for i in decode.get_inputs()}
    out = prefill.run(None, feeds)
    n = (len(out) - 1) // 2
    bundle, ks, vs = [out[0][0].astype(np.float32)], list(out[1 : 1 + n]), list(out[1 + n :])
    torch_pre, torch_dec = GPTPrefillGraph(gpt).eval(), GPTDecodeGraph(gpt).eval()
    with torch.no_grad(), parametrize.cached():
        t_out = torch_pre(*(torch.from_numpy(v) for v in feeds.values()))
        student, tks, tvs = [t_out[0][0].numpy()], list(t_out[1 : 1 + n]), list(t_out[1 + n :])
        for step, code in enumerate(codes[:-1]):
            token, pos = np.array([[int(code)]], dtype=np.int64), np.array([item.prompt_codes.size + step], dtype=np.int64)
            step_feeds = {"token": token, "audio_pos": pos}
            for i in range(n):
                step_feeds[f"past_k_{i}"] = ks[i].astype(np.float16 if half[f"past_k_{i}"] else np.float32)
                step_feeds[f"past_v_{i}"] = vs[i].astype(np.float16 if half[f"past_v_{i}"] else np.float32)
            o = decode.run(None, step_feeds)
            bundle.append(o[0][0].astype(np.float32))
            ks = [np.concatenate([a, b], 1) for a, b in zip(ks, o[1 : 1 + n])]
            vs = [np.concatenate([a, b], 1) for a, b in zip(vs, o[1 + n :])]
            t = torch_dec(torch.from_numpy(token), torch.from_numpy(pos), *tks, *tvs)
            student.append(t[0][0].numpy())
            tks = [torch.cat([a, b], 1) for a, b in zip(tks, t[1 : 1 + n])]
            tvs = [torch.cat([a, b], 1) for a, b in zip(tvs, t[1 + n :])]
    return np.stack(student), np.stack(bundle)


def _int8_parity(manifest) -> list[dict]:  # noqa: ANN001
    """Every int8 graph check the bundle's export ran: its lowest output SNR against the model it was
    judged against (``reference``: scored or plain) and against the plain model, and whether it passed."""

    def lowest(outputs: list[dict]) -> float | None:
        snrs = [o["snr_db"] for o in outputs if o.get("snr_db") is not None]
        return min(snrs) if snrs else None

    out = []
    for check in manifest.checks:
        if check.get("precision") == "int8" and check.get("graph") != "end_to_end":
            outputs = check.get("outputs", [])
            out.append({
                "graph": check["graph"], "reference": check.get("reference", "plain"), "snr_db": lowest(outputs),
                "snr_vs_plain_db": lowest(check.get("outputs_vs_plain", outputs)), "passed": bool(check["passed"]),
            })  # fmt: skip
    return out


def _log_mel(wav: np.ndarray, sr: int) -> np.ndarray:
    import librosa

    mel = librosa.feature.melspectrogram(y=wav.astype(np.float32), sr=sr, n_fft=1024, hop_length=256, n_mels=80)
    return np.log(np.maximum(mel, 1e-5))


def _compare(a: np.ndarray, b: np.ndarray, sr: int) -> dict[str, float]:
    n = min(a.size, b.size)
    a, b = a[:n].astype(np.float64), b[:n].astype(np.float64)
    noise = float(np.sum((a - b) ** 2))
    snr = 10 * math.log10(float(np.sum(a * a)) / noise) if noise > 0 else math.inf
    la, lb = _log_mel(a, sr), _log_mel(b, sr)
    return {"snr_db": snr, "log_mel_l1": float(np.mean(np.abs(la - lb)))}


def _figures(report) -> dict[str, float]:  # noqa: ANN001
    keep = ("quality", "distillmos", "speaker_cos", "stoi", "mcd_db", "log_mel_l1")
    return {m.name: m.value for m in report.metrics if m.name in keep}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--storage", required=True)
    ap.add_argument("--study", default="demo")
    ap.add_argument("--artifacts", required=True, type=Path)
    ap.add_argument("--exports", type=Path, help="an export folder (trial-NNNN bundles)")
    ap.add_argument("--trials", type=int, nargs="*", default=[], help="also export these trials first")
    ap.add_argument("--extra-out", type=Path, help="where --trials are exported")
    ap.add_argument("--target", default="rtx3060")
    ap.add_argument("--pair", nargs=2, type=Path, action="append", default=[], metavar=("BUNDLE", "STUDENT"),
                    help="also compare a bundle with a student folder outside the study (its metrics.json, if any, "
                    "holds the scored figures)")
    ap.add_argument("--student-ranges", action="store_true",
                    help="export --trials with the scored student's int8 activation ranges (default: the export's own)")
    ap.add_argument("--json", type=Path, help="write the figures here too")
    args = ap.parse_args()

    import optuna

    from autocompress.compress.plan import CompressionPlan
    from autocompress.export.ort_quant import RANGES_NOTE
    from autocompress.runtime.runner import BundleRunner
    from autocompress.runtime.sampling import SamplingConfig
    from autocompress.score.quality import compare_audio
    from autocompress.search.bundles import onnx_exporter
    from autocompress.search.cache import TeacherCache
    from autocompress.search.scoring import FLOOR
    from autocompress.search.synth import EXTRA_CODES
    from autocompress.targets import load_target

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=args.study, storage=args.storage)
    cache_path = args.artifacts / "teacher-cache" / f"{args.study}.pt"
    cache = TeacherCache.from_dict(torch.load(cache_path, map_location="cpu", weights_only=True))
    target = load_target(args.target)
    students = args.artifacts / "students" / args.study

    bundles: dict[int, Path] = {}
    if args.exports:
        for folder in sorted(args.exports.glob("trial-*")):
            bundles[int(folder.name.split("-")[1])] = folder
    if args.trials:
        export = onnx_exporter(cache_path)
        for number in args.trials:
            dest = args.extra_out / f"trial-{number:04d}"
            src = students / f"trial-{number:04d}"
            if (dest / "manifest.json").is_file():
                pass
            elif args.student_ranges:
                from autocompress.export.bundle import export_bundle, voice_activation_ranges
                from autocompress.search.bundles import EXPORTER, eval_inputs
                from autocompress.search.pipeline import load_student

                plan = CompressionPlan.from_json((src / "plan.json").read_text())
                scored, _ = _scored_student(src, plan, cache, target)
                export_bundle(load_student(src), plan, dest, target, eval_inputs(cache_path),
                              metrics=study.trials[number].user_attrs.get("metrics", []), exporter=EXPORTER,
                              activation_ranges=voice_activation_ranges(scored))  # fmt: skip
            else:
                export(study.trials[number], src, dest, target)
            bundles[number] = dest

    jobs = []  # (label, bundle, student folder, stored figures, plan summary)
    for number, folder in sorted(bundles.items()):
        trial = study.trials[number]
        stored = {m["name"]: m["value"] for m in trial.user_attrs.get("metrics", [])}
        jobs.append((f"trial {number}", folder, students / f"trial-{number:04d}", stored,
                     trial.user_attrs.get("plan_summary", "")))  # fmt: skip
    for folder, src in args.pair:
        saved = src / "metrics.json"
        stored = {m["name"]: m["value"] for m in json.loads(saved.read_text())} if saved.is_file() else {}
        jobs.append((src.name, folder, src, stored, ""))

    items = _inputs(cache)
    limits = [int(1.5 * s.codes.numel()) + EXTRA_CODES for s in cache.sentences]
    results = {}
    for label, folder, src, stored, summary in jobs:
        plan = CompressionPlan.from_json((src / "plan.json").read_text())
        student, torch_q = _scored_student(src, plan, cache, target)

        runner = BundleRunner(folder, prefer_gpu=False, threads=1)
        greedy = SamplingConfig(top_k=1, repetition_penalty=1.35)
        wavs, same_codes, per_item, logits_t, logits_b = [], [], [], [], []
        for i, (item, limit) in enumerate(zip(items, limits)):
            out = runner.generate(item, greedy, max_new_tokens=limit)
            ge = runner.style(item.ref_spec, item.ref_sv)
            wav = runner.vocode(out.tokens, item.text, ge, noise_scale=0.0)
            wavs.append(wav)
            t_codes = torch_q.speech[i].codes.numpy()
            t_wav = torch_q.speech[i].wav.numpy()
            n = min(t_codes.size, out.tokens.size)
            first = np.nonzero(t_codes[:n] != out.tokens[:n])[0]
            same = runner.vocode(t_codes, item.text, ge, noise_scale=0.0) if t_codes.size else t_wav
            same_codes.append(_compare(t_wav, same, runner.sampling_rate))
            if t_codes.size:
                lt, lb = _gpt_logits(student.gpt, runner, item, t_codes)
                logits_t.append(lt)
                logits_b.append(lb)
            per_item.append({
                "torch_codes": int(t_codes.size), "bundle_codes": int(out.tokens.size),
                "first_code_difference": int(first[0]) if first.size else (None if t_codes.size == out.tokens.size else n),
                "same_codes": same_codes[-1],
            })  # fmt: skip
        bundle_q = compare_audio(cache.reference, wavs, runner.sampling_rate, FLOOR)
        used = {g: m.used for g, m in runner.manifest.modules.items()}
        lt = np.concatenate(logits_t).astype(np.float64) if logits_t else np.zeros((0, 1))
        lb = np.concatenate(logits_b).astype(np.float64) if logits_b else np.zeros((0, 1))
        err = float(np.sum((lt - lb) ** 2))
        gpt_logits = {
            "snr_db": 10 * math.log10(float(np.sum(lt * lt)) / err) if err > 0 else math.inf,
            "top1_agreement": float(np.mean(lt.argmax(-1) == lb.argmax(-1))) if lt.size else math.nan,
            "steps": int(lt.shape[0]),
        }
        results[label] = {
            "plan": summary,
            "shipped": used,
            "stored": {k: stored.get(k) for k in _figures(bundle_q)},
            "torch_rescored": _figures(torch_q.report),
            "bundle": _figures(bundle_q),
            "gpt_logits": gpt_logits,
            "int8_parity": _int8_parity(runner.manifest),
            "range_notes": {g: [n for n in m.notes if RANGES_NOTE in n] for g, m in runner.manifest.modules.items()},
            "items": per_item,
        }
        r = results[label]
        print(f"{label}: {r['plan']}\n  shipped {used}")
        print(f"  gpt logits (teacher-forced, {gpt_logits['steps']} steps): SNR {gpt_logits['snr_db']:.1f} dB against the "
              f"scored student, top-1 agreement {gpt_logits['top1_agreement']:.3f}")  # fmt: skip
        for check in r["int8_parity"]:
            snr = "exact" if check["snr_db"] is None else f"{check['snr_db']:.1f} dB"
            plain = "exact" if check["snr_vs_plain_db"] is None else f"{check['snr_vs_plain_db']:.1f} dB"
            also = f", {plain} against the plain one" if check["reference"] != "plain" else ""
            print(f"  int8 parity {check['graph']}: {snr} against the {check['reference']} model{also} "
                  f"({'passed' if check['passed'] else 'failed: fell back'})")  # fmt: skip
        for key in ("quality", "distillmos", "speaker_cos", "stoi", "mcd_db"):
            s, t, b = r["stored"].get(key), r["torch_rescored"].get(key), r["bundle"].get(key)
            print(f"  {key:12s} stored {s if s is None else round(s, 4)!s:>8}  torch {t:8.4f}  bundle {b:8.4f}")
        for i, it in enumerate(per_item):
            sc = it["same_codes"]
            print(f"  sentence {i}: codes torch {it['torch_codes']} bundle {it['bundle_codes']} first diff "
                  f"{it['first_code_difference']}; same codes: SNR {sc['snr_db']:.1f} dB, log-mel L1 {sc['log_mel_l1']:.4f}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=float))


if __name__ == "__main__":
    main()
