"""The opt-out keywords of SMS (Twilio's Advanced Opt-Out defaults, which carriers expect): a message that is
one of them, alone, changes whether the number may be texted."""

from __future__ import annotations

from typing import Literal

Keyword = Literal["opt_out", "opt_in", "help"]

OPT_OUT_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
OPT_IN_WORDS = frozenset({"START", "YES", "UNSTOP"})
HELP_WORDS = frozenset({"HELP", "INFO"})
# Longer than any keyword: a body longer than this is never one, and is not upper-cased.
_LONGEST = 16


def keyword_of(body: str) -> Keyword | None:
    """The keyword a message body is, ignoring case, surrounding spaces and a final full stop or '!'."""
    if len(body) > _LONGEST:
        return None
    word = body.strip().rstrip(".!").strip().upper()
    if word in OPT_OUT_WORDS:
        return "opt_out"
    if word in OPT_IN_WORDS:
        return "opt_in"
    if word in HELP_WORDS:
        return "help"
    return None
