"""``autocompress report --study NAME [--target T] --out report.html``."""

from __future__ import annotations

import argparse
from pathlib import Path

from autocompress.store.urls import DEFAULT_STORAGE


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report", help="write a self-contained HTML report of a search",
        description="Write one HTML file (plots, trials, bundles and their audio) for a study, and a PNG per plot.",
    )
    p.add_argument("--study", required=True, help="the study to report")
    p.add_argument("--target", default=None, help="the study's target (checked; default: read from the study)")
    p.add_argument("--storage", default=DEFAULT_STORAGE, metavar="URL", help=f"database URL (default {DEFAULT_STORAGE})")
    p.add_argument("--exports", default=None, help="export folder (default: exports/<study>/<target>/)")
    p.add_argument("--out", default="report.html", help="the HTML file to write (default report.html)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from autocompress.cli.argtypes import check_output_file
    from autocompress.exceptions import ConfigError
    from autocompress.report import attach_bundles, load_report_data, write_report
    from autocompress.store import require_database

    out = Path(args.out)
    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder; give the HTML file to write, e.g. {out / 'report.html'}")
    if out.exists() and not out.is_file():  # the report is renamed onto it: a device such as /dev/null would be replaced
        raise ConfigError(f"--out {out} is not a regular file; give the path of the HTML file to write")
    check_output_file(out, "--out")  # before the study is read: a path under a file fails now, in one line
    if args.exports and not Path(args.exports).is_dir():
        raise ConfigError(f"--exports {args.exports}: no such folder")
    require_database(args.storage)
    data = load_report_data(args.storage, args.study, args.target)  # read once: thousands of trials take seconds
    export_dir = Path(args.exports) if args.exports else Path("exports") / args.study / (data.target or "")
    if export_dir.is_dir():
        attach_bundles(data, export_dir)
    else:
        print(f"note: no bundles shown: no export folder at {export_dir} (--exports names another)")
    try:
        written = write_report(data, out)
    except OSError as e:  # e.g. a read-only file system: name --out, not the temporary file beside it
        raise ConfigError(f"--out {out}: cannot write the report there ({e.strerror or e}); choose another path") from e
    for path in written:
        print(path)
    return 0
