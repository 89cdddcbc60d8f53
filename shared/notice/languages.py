"""Content negotiation for the public notice: which language (Accept-Language) and which format (Accept).

Both headers come from anyone on the internet, so each parser bounds its work: it reads at most
HEADER_MAX_CHARS characters and ITEMS_MAX items, and skips any item that is not well formed instead of failing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

ENGLISH = "en"  # the built-in wording of every notice
HEADER_MAX_CHARS = 1024
ITEMS_MAX = 32

# A language range of RFC 4647 (as Accept-Language carries them): `*`, or 1-8 letters then subtags of 1-8.
_RANGE = re.compile(r"\*|[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*")
_MEDIA_RANGE = re.compile(r"[A-Za-z0-9!#$&^_.+-]{1,64}/[A-Za-z0-9!#$&^_.*+-]{1,64}")
# A quality value of RFC 9110: 0 to 1 with at most three decimals.
_QVALUE = re.compile(r"0(\.[0-9]{0,3})?|1(\.0{0,3})?")


def weighted(header: str | None) -> list[tuple[str, float]]:
    """The items of an Accept or Accept-Language header with their quality, highest first (ties keep their
    order), lower-cased; malformed items and parameters other than q are skipped, never an error."""
    if not header:
        return []
    items: list[tuple[str, float]] = []
    for raw in header[:HEADER_MAX_CHARS].split(",")[:ITEMS_MAX]:
        value, *parameters = (part.strip() for part in raw.split(";"))
        quality = 1.0
        for parameter in parameters:
            name, _, given = parameter.partition("=")
            if name.strip().lower() == "q":
                given = given.strip()
                quality = float(given) if _QVALUE.fullmatch(given) else -1.0
        if value and quality >= 0:
            items.append((value.lower(), quality))
    items.sort(key=lambda item: -item[1])  # stable: equal qualities keep the sender's order
    return items


def choose_language(accept_language: str | None, available: Iterable[str]) -> str:
    """The tag of `available` (the dataset's notice languages) the reader prefers, or English.

    For each acceptable range, best first: the same tag; else the range shortened subtag by subtag (RFC 4647
    lookup: de-CH-1996, de-CH, de); else a tag the range is a prefix of (`de` finds `de-DE`). `*` and anything
    unmatched mean English, which every notice has. A range with q=0 is never chosen.
    """
    by_lower = {tag.lower(): tag for tag in available}
    by_lower.setdefault(ENGLISH, ENGLISH)
    for language, quality in weighted(accept_language):
        if quality <= 0 or not _RANGE.fullmatch(language):
            continue
        if language == "*":
            return by_lower[ENGLISH]
        found = _lookup(language, by_lower) or _prefixed(language, by_lower)
        if found is not None:
            return found
    return by_lower[ENGLISH]


def _lookup(language: str, by_lower: dict[str, str]) -> str | None:
    subtags = language.split("-")
    while subtags:
        found = by_lower.get("-".join(subtags))
        if found is not None:
            return found
        subtags.pop()
    return None


def _prefixed(language: str, by_lower: dict[str, str]) -> str | None:
    return next((tag for lower, tag in by_lower.items() if lower.startswith(language + "-")), None)


def wants_json(accept: str | None, format_param: str | None) -> bool:
    """JSON when `?format=json`, or when Accept ranks application/json above text/html; HTML otherwise.

    `format` other than json or html is the caller's to refuse (see `FORMATS`)."""
    if format_param:
        return format_param == "json"
    json_quality = html_quality = 0.0
    for media, quality in weighted(accept):
        if not _MEDIA_RANGE.fullmatch(media):
            continue
        if media == "application/json":
            json_quality = max(json_quality, quality)
        elif media in ("text/html", "text/*", "*/*"):
            html_quality = max(html_quality, quality if media == "text/html" else quality - 0.001)
    return json_quality > html_quality


FORMATS = ("html", "json")
