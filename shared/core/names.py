"""How an answer shows the names of undeclared fields it dropped (`dropped_fields`): one rule for every capability.

Names are chosen by whoever built the page or the message, not by the person, so they come back; but tamed, so
that an answer stays safe to show and bounded whatever was sent.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

# An undeclared name comes back at most this long, so an answer never grows with what a page sends.
SHOWN_NAME_LENGTH = 64
MAX_DROPPED_SHOWN = 50
_KEPT_PUNCTUATION = frozenset(" _.-[]:")


def shown_name(name: str) -> str:
    """Letters, marks and digits of any script and ` _.-[]:` as given, any other character (controls, quotes,
    angle brackets...) as `?`, and a name over 64 characters cut to 63 and `…`. Only the empty name, which has
    nothing to show, is `(unnamed)`."""
    kept = "".join(
        char if char in _KEPT_PUNCTUATION or unicodedata.category(char)[0] in "LMN" else "?"
        for char in unicodedata.normalize("NFC", name)
    )
    if len(kept) > SHOWN_NAME_LENGTH:
        kept = kept[: SHOWN_NAME_LENGTH - 1] + "\u2026"
    return kept or "(unnamed)"


def shown_names(names: Iterable[str]) -> tuple[str, ...]:
    """The dropped names of one answer: each shown as above, once, sorted, at most 50."""
    return tuple(sorted({shown_name(name) for name in names})[:MAX_DROPPED_SHOWN])
