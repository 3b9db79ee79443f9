#!/usr/bin/env python3
"""Run a compression search: ``python run_search.py --target rtx3060``.

The same command as ``autocompress search``; see ``--help`` for the flags.
"""

from __future__ import annotations

import sys

from autocompress.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main(["search", *sys.argv[1:]]))
