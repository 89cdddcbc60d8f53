"""Names a client sent (form fields, merge fields) as answers show them: readable, tamed and bounded."""

from __future__ import annotations

import unicodedata

# An undeclared name comes back at most this long, so an answer never grows with what a page sends.
SHOWN_NAME_LENGTH = 64
_KEPT_PUNCTUATION = frozenset(" _.-[]:")


def shown_name(name: str) -> str:
    """A field name as answers show it. Names are the form's, not the person's, so they come back, but tamed:
    letters, marks and digits of any script and ` _.-[]:` as given, any other character (controls, quotes,
    angle brackets...) as `?`, and a name over 64 characters cut to 63 and `…`. Only the empty name, which has
    nothing to show, is `(unnamed)`."""
    kept = "".join(
        char if char in _KEPT_PUNCTUATION or unicodedata.category(char)[0] in "LMN" else "?"
        for char in unicodedata.normalize("NFC", name)
    )
    if len(kept) > SHOWN_NAME_LENGTH:
        kept = kept[: SHOWN_NAME_LENGTH - 1] + "\u2026"
    return kept or "(unnamed)"
