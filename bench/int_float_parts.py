"""Projected cost of integer plans on GPU targets: fp16 against fp32 float parts (full-size v2).

An int8 (W8A8 QDQ) or int4 (weight-only) group's exported graph also runs float parts: the GPT's
KV cache, norms, attention, activations between layers and the dequantised math. A GPU target's
bundle runs them in fp16, a CPU target's in fp32. This prints, for a full-size GPT-SoVITS v2
voice (random weights: cost does not depend on the values), the figures the search records for
each plan, as ratios against the fp16 teacher computed in the same run. Every figure here is
PROJECTED from FLOPs and bytes with the target's data file (roofline), not measured on the card.

    python bench/int_float_parts.py                       # rtx3060 and l4
    python bench/int_float_parts.py --targets rtx4070 --small
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autocompress.compress.plan import CompressionPlan, GroupPlan, QuantConfig  # noqa: E402
from autocompress.score.voice_cost import precisions_from_plan, profile_voice, project_voice  # noqa: E402
from autocompress.targets import load_target  # noqa: E402

GROUPS = ("gpt", "enc_p", "flow", "dec", "ref_enc")
FIGURES = ("gpt_ms_per_token", "rtf", "memory_bytes", "memory_weight_bytes", "memory_kv_cache_bytes",
           "memory_activation_bytes")  # fmt: skip


def _all(weights: str, activations: str) -> CompressionPlan:
    return CompressionPlan({g: GroupPlan(quant=QuantConfig(weights, activations)) for g in GROUPS})


def plans() -> dict[str, CompressionPlan]:
    """The baselines and the integer plans, each integer plan with fp32 and with fp16 float parts."""
    return {
        "fp32 teacher": CompressionPlan(),
        "fp16 teacher": _all("fp16", "fp16"),
        "int8, fp32 float parts": _all("int8", "int8"),
        "int8, fp16 float parts": _all("int8", "fp16"),
        "gpt int4 (rest fp16), fp32 float parts": CompressionPlan(
            {"gpt": GroupPlan(quant=QuantConfig("int4", "fp32"))} | {g: GroupPlan(quant=QuantConfig("fp16", "fp16")) for g in GROUPS[1:]}
        ),
        "gpt int4 (rest fp16), fp16 float parts": CompressionPlan(
            {"gpt": GroupPlan(quant=QuantConfig("int4", "fp16"))} | {g: GroupPlan(quant=QuantConfig("fp16", "fp16")) for g in GROUPS[1:]}
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", nargs="+", default=["rtx3060", "l4"], help="GPU targets to project for")
    parser.add_argument("--small", action="store_true", help="the tiny test configs instead of full size (a smoke run)")
    args = parser.parse_args()

    import torch

    from autocompress.models.gpt_sovits.config import gpt_tiny, gpt_v2, sovits_tiny, sovits_v2
    from autocompress.models.gpt_sovits.gpt import Text2SemanticGPT
    from autocompress.models.gpt_sovits.sovits import SynthesizerTrn
    from autocompress.models.gpt_sovits.voice import Voice

    torch.manual_seed(0)
    voice = Voice(
        Text2SemanticGPT(gpt_tiny() if args.small else gpt_v2()).eval(),
        SynthesizerTrn(sovits_tiny() if args.small else sovits_v2(), include_enc_q=False).eval(),
    )
    profile = profile_voice(voice)
    for name in args.targets:
        target = load_target(name)
        rows = {}
        for label, plan in plans().items():
            metrics = project_voice(voice, target, *precisions_from_plan(plan), profile=profile)
            rows[label] = {m.name: m.value for m in metrics}
        base = rows["fp16 teacher"]
        print(f"\n{target.name}: PROJECTED (roofline from FLOPs and bytes, not measured); ratio to the fp16 teacher")
        print(f"{'plan':42s} " + " ".join(f"{f:>22s}" for f in FIGURES))
        for label, row in rows.items():
            cells = []
            for f in FIGURES:
                value = row[f] / 2**20 if f.startswith("memory") else row[f]
                unit = " MiB" if f.startswith("memory") else ""
                cells.append(f"{value:9.3f}{unit} ({row[f] / base[f]:4.2f}x)" if base[f] else f"{value:9.3f}{unit}")
            print(f"{label:42s} " + " ".join(f"{c:>22s}" for c in cells))


if __name__ == "__main__":
    main()
