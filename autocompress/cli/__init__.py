"""Command line: argument parsing and rich rendering only; the logic lives in the library."""
