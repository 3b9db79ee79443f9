"""``autocompress targets``: list the hardware targets and their figures."""

from __future__ import annotations

import argparse

from autocompress.cli.argtypes import user_text

# Peak columns; a column of two precisions shows the second one's rate on a second line
# (rows are already two lines or more tall, so bf16 and fp8 cost no width and no height).
_PEAK_COLUMNS = (("fp32",), ("fp16", "bf16"), ("int8", "fp8"), ("int4",))
_RUNTIME_SHORT = {
    "onnxruntime-tensorrt": "ort-trt",
    "onnxruntime-cuda": "ort-cuda",
    "onnxruntime-cpu": "ort-cpu",
}


def register(subparsers) -> None:  # noqa: ANN001
    parser = subparsers.add_parser("targets", help="list the hardware targets (--target names)")
    parser.add_argument("name", nargs="?", type=user_text, help="show only this target (a name or a target .toml)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from autocompress.cli.console import output_console
    from rich.markup import escape
    from rich.table import Table

    from autocompress.targets import list_targets, load_target

    targets = [load_target(n) for n in ([args.name] if args.name else list_targets())]
    table = Table(title="Hardware targets: datasheet figures (projected) or measured here")
    peak_heads = ["\n".join(precs) for precs in _PEAK_COLUMNS]
    for col in ("target", "mem GiB", "GB/s", *peak_heads, "low precision", "runtime", "budget", "figures"):
        numeric = col in ("mem GiB", "GB/s", *peak_heads)
        keep = col in ("target", "figures")  # never truncated: the name and the measured/projected label
        table.add_column(col, overflow="fold", no_wrap=keep, min_width=16 if col == "target" else None,
                         justify="right" if numeric else "left")
    for t in targets:
        low = "\n".join(  # one line per op kind, spaces between precisions, so a narrow column wraps whole words
            f"{kind[0]}: {' '.join(p for p in precs if p != 'fp32') or '-'}"
            for kind, precs in t.deployable.items()
        )
        peak = [
            "\n".join(f"{t.peak_tflops[p]:g}" if p in t.peak_tflops else "-" for p in precs)
            if any(p in t.peak_tflops for p in precs) else "-"
            for precs in _PEAK_COLUMNS
        ]
        table.add_row(
            escape(t.name),
            "run time" if t.memory_bytes is None else f"{t.memory_bytes / 2**30:g}",
            "run time" if t.bandwidth_gbps is None else f"{t.bandwidth_gbps:g}",
            *(["run time", "", "", ""] if t.measured else peak),
            low,
            " ".join(_RUNTIME_SHORT.get(r, r) for r in t.runtimes),
            f"{t.memory_budget_bytes / 2**30:g} GiB RTF {t.rtf_budget:g}",
            "measured" if t.measured else "projected",
        )
    console = output_console()
    console.print(table)
    console.print("Peak in dense TFLOPS/TOPS (bf16 under fp16, fp8 under int8); "
                  "low precision per op kind (m: matmul, c: conv).")
    return 0
