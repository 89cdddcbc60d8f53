"""Who a hit comes from: a bot or a person, and whether that person objects to being tracked.

Every capability that records a visit (the pixel, tracked links) asks these two questions the same way.
"""

from __future__ import annotations

from collections.abc import Mapping

from shared.capture.bot_pattern import BOT_MATCHER


def is_bot(user_agent: str | None) -> bool:
    """Declared crawlers, link previewers, monitors, HTTP libraries and headless browsers (bot_list.py makes the
    pattern); mail image proxies (Gmail, Yahoo, Outlook) fetch for a person opening a mail: not bots here."""
    return not user_agent or BOT_MATCHER.search(user_agent)


def tracking_refused(headers: Mapping[str, str]) -> bool:
    """Global Privacy Control and Do Not Track are honoured as an objection to tracking."""
    return headers.get("sec-gpc", "").strip() == "1" or headers.get("dnt", "").strip() == "1"
