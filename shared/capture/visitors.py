"""Who a hit comes from: a bot or a person, and whether that person objects to being tracked.

Every capability that records a visit (the pixel, tracked links) asks these two questions the same way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

# Declared crawlers, link previewers, monitors and HTTP libraries. Mail image proxies (Gmail, Outlook)
# fetch on behalf of a person opening the mail, so they are not bots here.
_BOTS = re.compile(
    r"bot\b|bot/|crawl|spider|slurp|facebookexternalhit|embedly|quora link preview|bitlybot|"
    r"headlesschrome|phantomjs|lighthouse|pingdom|uptime|monitor|curl/|wget/|python-requests|"
    r"python-httpx|python-urllib|aiohttp|go-http-client|java/|okhttp|libwww|httpclient|scrapy",
    re.IGNORECASE,
)


def is_bot(user_agent: str | None) -> bool:
    return not user_agent or _BOTS.search(user_agent) is not None


def tracking_refused(headers: Mapping[str, str]) -> bool:
    """Global Privacy Control and Do Not Track are honoured as an objection to tracking."""
    return headers.get("sec-gpc", "").strip() == "1" or headers.get("dnt", "").strip() == "1"
