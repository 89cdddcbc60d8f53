"""Whole numbers read from text (query parameters, headers, format arguments): ASCII digits only, bounded.

`str.isdigit()` is true for "²" and "٣", which int() then refuses or reads as another number, and int() of a
string over 4,300 digits raises: every number a request carries as text goes through `ascii_int` instead.
"""

from __future__ import annotations

import re

# [0-9] in a str pattern is the ten ASCII digits (\d would match every Unicode decimal digit).
_DIGITS = re.compile(r"[0-9]{1,18}")
LARGEST = 10**18 - 1


def ascii_int(text: str | None, low: int, high: int) -> int | None:
    """The number that `text` spells in 1 to 18 ASCII digits, when it lies in [low, high]; otherwise None."""
    if text is None or not _DIGITS.fullmatch(text):
        return None
    value = int(text)
    return value if low <= value <= high else None
