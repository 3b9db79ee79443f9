"""Database URLs as text: the default store, and passwords masked in messages (no SQLAlchemy
import, so the CLI's help and its light commands start fast)."""

from __future__ import annotations

import re

DEFAULT_STORAGE = "sqlite:///db/autocompress.db"

# "://user:password@", to the last "@" before a space (a user name may hold an "@": Azure's "me@server")
_USERINFO = re.compile(r"(://[^:/\s]*:)\S*@")


def mask_password(text: str) -> str:
    """Return ``text`` with the password of any ``scheme://user:password@`` in it masked, even in a
    URL that does not parse (for messages about a bad URL)."""
    return _USERINFO.sub(r"\1***@", text)


__all__ = ["DEFAULT_STORAGE", "mask_password"]
