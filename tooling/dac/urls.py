"""Printing a URL that may carry ``user:password@``: one helper for the ES and Kibana connections."""

from __future__ import annotations

import re


def redact_url(url: str) -> str:
    """``url`` without any user:password part.

    Total (string work, no parsing that can raise), so it can name a malformed URL in an error.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    authority, *tail = re.split(r"(?=[/?#])", rest, maxsplit=1)
    if "@" not in authority:
        return url
    return f"{scheme}{sep}{authority.rpartition('@')[2]}{''.join(tail)}"
