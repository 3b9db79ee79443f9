"""``autocompress dashboard``: optuna-dashboard on 127.0.0.1 over the search's storage and artifacts."""

from __future__ import annotations

import argparse
from pathlib import Path

from autocompress.store.urls import DEFAULT_STORAGE

HOST = "127.0.0.1"  # never listens beyond this machine


def register(subparsers) -> None:  # noqa: ANN001
    p = subparsers.add_parser(
        "dashboard", help="browse studies, trials, plans and audio samples in optuna-dashboard (local only)"
    )
    p.add_argument("--storage", default=DEFAULT_STORAGE, metavar="URL", help=f"database URL (default {DEFAULT_STORAGE})")
    p.add_argument("--artifacts", type=Path, metavar="DIR", help="artifact folder (default: beside the database)")
    p.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080)")
    p.add_argument("--host", default=HOST, help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--allow-remote", action="store_true",
                   help="allow a --host other than loopback (the dashboard has no authentication)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from autocompress.exceptions import ConfigError
    from autocompress.search.paths import artifacts_dir
    from autocompress.search.study import open_storage
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
    artifacts = artifacts_dir(args.storage, args.artifacts)
    if artifacts.exists() and not artifacts.is_dir():  # before anything is made
        raise ConfigError(f"--artifacts {artifacts}: a file, not a folder (the search's artifact folder)")
    _note_missing_database(args.storage)
    Store(args.storage).close()  # fails with one line when the database cannot be opened
    open_storage(args.storage)  # ... and so does Optuna's, which makes its tables (the dashboard would not)
    _check_port_free(args.host, args.port)
    artifacts.mkdir(parents=True, exist_ok=True)
    where = f"[{args.host}]" if ":" in args.host else args.host
    print(f"optuna-dashboard on http://{where}:{args.port}/ for {display_url(args.storage)} (artifacts {artifacts})")
    print("press Ctrl-C to stop")
    run_server(args.storage, host=args.host, port=args.port, artifact_store=FileSystemArtifactStore(artifacts))
    return 0


def _note_missing_database(url: str) -> None:
    """Say so on stderr when ``url`` is a SQLite file that does not exist yet (a mistyped
    ``--storage`` shows an empty dashboard; the file is made, as a search would make it)."""
    import sys

    from autocompress.exceptions import ConfigError
    from autocompress.store import require_database

    try:
        require_database(url)
    except ConfigError as e:
        print(f"note: {e}; starting on a new, empty one", file=sys.stderr)


def _check_port_free(host: str, port: int) -> None:
    """Raise ``ConfigError`` when ``host:port`` cannot be listened on (another server has it)."""
    import socket

    from autocompress.exceptions import ConfigError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the dashboard's server does
        try:
            s.bind((host, port))
        except OSError as e:
            raise ConfigError(
                f"cannot listen on {host} port {port}: {e.strerror or e}; hint: choose another --port"
            ) from None
