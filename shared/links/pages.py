"""The pages a short link answers when it does not redirect: self-contained, no script, revealing nothing.

An unknown, expired and malformed link get the same page, so a page tells no one whether a link ever existed.
"""

from __future__ import annotations

PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Robots-Tag": "noindex, nofollow",
}

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222}}</style>
</head><body><main><h1>{title}</h1><p>{text}</p></main></body></html>
"""

NOT_FOUND = _PAGE.format(
    title="This link is not available",
    text="The link may have expired, or it may be mistyped. Ask whoever shared it for a new one.",
)
UNAVAILABLE = _PAGE.format(
    title="Please try again in a moment",
    text="This link cannot be opened right now. Try again in a few seconds.",
)
