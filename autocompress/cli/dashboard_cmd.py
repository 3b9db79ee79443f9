"""``autocompress dashboard``: optuna-dashboard on 127.0.0.1 over the search's storage and artifacts."""

from __future__ import annotations

import argparse
from pathlib import Path

from autocompress.store import DEFAULT_STORAGE

HOST = "127.0.0.1"  # never listens beyond this machine


def register(subparsers) -> None:  # noqa: ANN001
    p = subparsers.add_parser(
        "dashboard", help="browse studies, trials, plans and audio samples in optuna-dashboard (local only)"
    )
    p.add_argument("--storage", default=DEFAULT_STORAGE, metavar="URL", help=f"database URL (default {DEFAULT_STORAGE})")
    p.add_argument("--artifacts", type=Path, metavar="DIR", help="artifact folder (default: beside the database)")
    p.add_argument("--port", type=int, default=8080, help="port on 127.0.0.1 (default 8080)")
    p.add_argument("--host", default=HOST, help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--allow-remote", action="store_true",
                   help="allow a --host other than loopback (the dashboard has no authentication)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from autocompress.exceptions import ConfigError
    from autocompress.search.paths import artifacts_dir
    from autocompress.store import Store, display_url

    try:
        from optuna_dashboard import run_server
    except ImportError:
        raise ConfigError(
            "optuna-dashboard is not installed; hint: pip install 'autocompress[dashboard]'"
        ) from None
    from optuna.artifacts import FileSystemArtifactStore

    if not 0 < args.port < 65536:
        raise ConfigError(f"--port must be 1..65535, got {args.port}")
    if args.host not in (HOST, "localhost", "::1") and not args.allow_remote:
        raise ConfigError(
            f"refusing to serve the dashboard on {args.host}: it has no authentication; "
            "pass --allow-remote to do it anyway"
        )
    Store(args.storage).close()  # fails with one line when the database cannot be opened
    artifacts = artifacts_dir(args.storage, args.artifacts)
    artifacts.mkdir(parents=True, exist_ok=True)
    print(f"optuna-dashboard on http://{args.host}:{args.port}/ for {display_url(args.storage)} (artifacts {artifacts})")
    print("press Ctrl-C to stop")
    run_server(args.storage, host=args.host, port=args.port, artifact_store=FileSystemArtifactStore(artifacts))
    return 0
