"""``autocompress inspect PATH``: what a GPT-SoVITS model file holds, without loading a model."""

from __future__ import annotations

import argparse
import json

# Config fields worth a glance, per file kind (all others: --json).
_KEY_FIELDS = {
    "sovits": (
        "n_symbols", "hidden_channels", "filter_channels", "n_heads", "n_layers", "gin_channels",
        "upsample_initial_channel", "upsample_rates", "upsample_kernel_sizes", "ref_bins", "sampling_rate",
    ),
    "gpt": ("phoneme_vocab_size", "hidden_dim", "n_head", "n_layer", "ffn_dim", "layer_heads", "layer_ffn", "max_sec"),
}


def register(subparsers) -> None:  # noqa: ANN001
    parser = subparsers.add_parser("inspect", help="show a GPT (.ckpt) or SoVITS (.pth) file's version, config and sizes")
    parser.add_argument("path", help="a GPT-SoVITS model file")
    parser.add_argument("--json", action="store_true", help="print everything as JSON instead of tables")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from autocompress.models.gpt_sovits.checkpoint import inspect_checkpoint

    info = inspect_checkpoint(args.path)
    config = info.config.to_dict()
    console = Console(soft_wrap=True)  # piped: whole lines, not 80 columns
    if args.json:
        summary = {
            "path": info.path, "kind": info.kind, "version": info.version, "header": info.header.decode("latin-1"),
            "info": info.info, "has_enc_q": info.has_enc_q, "entries": info.n_entries, "dtypes": list(info.dtypes),
            "param_counts": info.param_counts, "buffer_count": info.buffer_count, "config": config,
        }
        console.print_json(json.dumps(summary))
        return 0
    kind = "SoVITS" if info.kind == "sovits" else "GPT (text to semantic)"
    console.print(f"[bold]{escape(str(info.path))}[/bold]: {kind} {info.version}")
    console.print(  # the file's own strings are text, never markup
        f"header {info.header!r}, info {info.info!r}, {info.n_entries} tensors stored as {'/'.join(info.dtypes)}"
        + (f", enc_q {'present' if info.has_enc_q else 'absent (inference export)'}" if info.kind == "sovits" else ""),
        markup=False,
    )
    settings = Table(title="Key config values")
    settings.add_column("field")
    settings.add_column("value", justify="right")
    for name in _KEY_FIELDS[info.kind]:
        settings.add_row(name, escape(_show(config[name])))
    console.print(settings)
    counts = Table(title="Stored parameters per submodule")
    counts.add_column("submodule")
    counts.add_column("parameters", justify="right")
    counts.add_column("share", justify="right")
    total = info.n_params
    for name, n in info.param_counts.items():
        counts.add_row(escape(name), f"{n:,}", f"{100 * n / max(total, 1):.1f} %")
    counts.add_row("[bold]total[/bold]", f"[bold]{total:,}[/bold]", "100.0 %")
    if info.buffer_count:
        counts.add_row("buffers (quantizer codebook)", f"{info.buffer_count:,}", "")
    console.print(counts)
    return 0


def _show(value: object) -> str:
    if value is None:
        return "uniform"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)
