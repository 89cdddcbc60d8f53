"""The bot matcher's data, made from the `crawler-user-agents` list plus PackCloud's own.

The list is the community's (about 1,500 patterns, kept up to date upstream); its version is pinned in
requirements-dev.txt and raised on purpose, with `make bot-pattern` and `bench/bots.py` run again. Joined as one
alternation, Python's `re` tries every pattern at every position of a user agent (about 1 ms a call); `combine`
factors the patterns' literal prefixes into a tree first, so each position tries only the patterns whose first
characters match. That one expression (`bot_pattern`) is the meaning of "a bot" that the tests compare with.

The app does not compile it: `re` took 20 to 30 ms of every cold start to compile its 21 KB. Nearly all of the
list's patterns are plain text, and plain text needs no regular expression: `matcher_data` writes those as data,
indexed by a few of their characters, and only the rest (29 of the list's patterns with regex syntax,
and the additions, which are case-insensitive) as one small expression, with the text each of its alternatives
cannot match without (`required_text`), which lets most user agents skip it. bot_pattern.py matches with both.

This module runs when the data is made, not in the deployed app: `make bot-pattern` (`python -m
shared.capture.bot_list`) writes it to bot_pattern.json (factoring the list at every cold start cost about 10 ms,
and loading the list's JSON 8 ms more); a unit test fails when the file is not what this module makes of the
pinned list.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Iterable
from importlib.metadata import version
from pathlib import Path

from crawleruseragents import CRAWLER_USER_AGENTS_DATA  # type: ignore[import-untyped]  # JSON data, no types

# Mail image proxies fetch a message's images when a person opens it: for a pixel in an e-mail, they are that
# person opening it, so PackCloud counts them as people. The list files them as bots.
MAIL_IMAGE_PROXIES = frozenset({"GoogleImageProxy", "YahooMailProxy", "FastmailUA", "Shortwave Image Fetcher"})

# PackCloud's own additions, matched case-insensitively: HTTP libraries, headless and automated browsers, link
# previewers and the generic words bots name themselves with, which catch bots the list does not know yet.
ADDITIONS = (
    # generic (Cubot is a phone maker whose models' user agents say CUBOT)
    r"bot\b(?<!cubot)",
    r"bot/",
    r"crawl",
    r"spider",
    r"scraper",
    r"slurp",
    r"feedfetcher",  # Google documents FeedFetcher-Google, the list has Feedfetcher-Google
    r"uptime",
    r"monitor",
    # HTTP libraries and command-line clients
    r"curl/",
    r"wget/",
    r"python-",
    r"python/",
    r"aiohttp",
    r"httpx",
    r"go-http-client",
    r"java/",
    r"okhttp",
    r"libwww",
    r"httpclient",
    r"scrapy",
    r"node-fetch",
    r"undici",
    r"axios/",
    r"got \(",
    r"guzzlehttp",
    r"httpie",
    r"postmanruntime",
    r"insomnia/",
    r"ruby",
    r"faraday",
    r"rest-client",
    r"php/",
    r"perl/",
    r"dart:io",
    r"reqwest",
    r"winhttp",
    r"windowspowershell",
    r"restsharp",
    # headless and automated browsers
    r"headless",
    r"phantomjs",
    r"lighthouse",
    r"playwright",
    r"puppeteer",
    r"selenium",
    r"webdriver",
    # link previewers
    r"facebookexternalhit",
    r"embedly",
    r"iframely",
    r"quora link preview",
    r"link ?preview",
    r"url ?preview",
    r"unfurl",
    r"slackbot",
    r"slack-imgproxy",
    r"skypeuripreview",
    r"whatsapp",
    r"vkshare",
    r"redditbot",
)

# What bot_pattern.py loads (not imported from it: importing it loads the file this module writes).
PATTERN_FILE = Path(__file__).with_name("bot_pattern.json")
# The plain-text patterns are found through the WINDOW characters of the user agent at every STEP-th position:
# each pattern at least WINDOW + STEP - 1 long holds one of those windows wherever it occurs, at an offset below
# STEP, so the index lists it under its windows at those offsets. The shorter ones (15) are tried on their own.
# Probing every second position halves the cost of a call; 3 or 4 characters, step 2 or 3, measured alike.
WINDOW, STEP = 4, 2
_QUANTIFIERS = frozenset("?*+{")
# One character that stands for itself: any but the metacharacters, or a metacharacter escaped.
_LITERAL_UNIT = re.compile(r"[^.^$*+?{}\[\]()|\\]|\\[^A-Za-z0-9]")
_LITERAL_UNITS = re.compile(rf"(?:{_LITERAL_UNIT.pattern})*")
_ESCAPED = re.compile(r"\\(.)")


def _top_level_alternatives(pattern: str) -> list[str]:
    """`a|b(c|d)` -> `a`, `b(c|d)`: the parts of an alternation that no group encloses."""
    if "|" not in pattern:
        return [pattern]
    parts, start, depth, escaped, in_class = [], 0, 0, False, False
    for at, char in enumerate(pattern):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            parts.append(pattern[start:at])
            start = at + 1
    return [*parts, pattern[start:]]


_LEADING_CLASS = re.compile(r"\[([A-Za-z0-9]{2,4})\](?![?*+{])")


def _alternatives(pattern: str) -> list[str]:
    """The pattern as alternatives that each may start with literal text: its top-level alternation split, and a
    leading class of letters (`[wW]get`) written out (`wget`, `Wget`)."""
    expanded = []
    for part in _top_level_alternatives(pattern):
        leading = _LEADING_CLASS.match(part)
        if leading:
            expanded += [char + part[leading.end() :] for char in leading.group(1)]
        else:
            expanded.append(part)
    return expanded


def literal_prefix(pattern: str) -> tuple[str, str]:
    """The literal text a pattern without top-level alternation starts with, and the pattern that follows it."""
    units = _LITERAL_UNITS.match(pattern)  # matches always, if only the empty text
    text = units.group() if units else ""
    if text and len(text) < len(pattern) and pattern[len(text)] in _QUANTIFIERS:
        text = text[: -len(_LITERAL_UNIT.findall(text)[-1])]  # the quantifier applies to its last character alone
    return _ESCAPED.sub(r"\1", text), pattern[len(text) :]


def _common_prefix(texts: list[str]) -> str:
    first, last = min(texts), max(texts)  # what the first and last in order share, all share
    length = 0
    while length < len(first) and first[length] == last[length]:
        length += 1
    return first[:length]


def _tree(items: list[tuple[str, str]]) -> str:
    by_first: dict[str, list[tuple[str, str]]] = {}
    rests: list[str] = []
    for literal, rest in items:
        if literal:
            by_first.setdefault(literal[0], []).append((literal, rest))
        else:
            rests.append(rest)
    if "" in rests:
        return ""  # one pattern ends here, so whatever the others need, this prefix matches
    branches = []
    for _, group in sorted(by_first.items()):
        shared = _common_prefix([literal for literal, _ in group])  # one step down a chain, not a step a character
        branches.append(re.escape(shared) + _tree([(literal[len(shared) :], rest) for literal, rest in group]))
    branches += [f"(?:{rest})" for rest in rests]
    return branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"


def _any_case(pattern: str) -> list[str]:
    """The pattern, case-insensitive, as alternatives that start with a literal character of either case:
    inside the tree, an alternative whose first character differs is skipped at once, a case-insensitive one not."""
    literal, rest = literal_prefix(pattern)
    if not literal:
        return [f"(?i:{pattern})"]
    tail = f"(?i:{re.escape(literal[1:])}{rest})"
    return [re.escape(first) + tail for first in sorted({literal[0].lower(), literal[0].upper()})]


def combine(patterns: Iterable[str], ignore_case: Iterable[str] = ()) -> str:
    """One pattern that matches where any of `patterns` (case-sensitive) or of `ignore_case` matches, with their
    common literal prefixes factored.

    Patterns anchored at the start share one `^`, which fails at once everywhere but the first position."""
    alternatives = [part for pattern in patterns for part in _alternatives(pattern)]
    alternatives += [
        variant for pattern in ignore_case for part in _alternatives(pattern) for variant in _any_case(part)
    ]
    anchored = [part[1:] for part in alternatives if part.startswith("^")]
    anywhere = _tree([literal_prefix(part) for part in alternatives if not part.startswith("^")])
    if not anchored:
        return anywhere
    return f"{anywhere}|^{_tree([literal_prefix(part) for part in anchored])}"


def list_patterns() -> list[str]:
    """The list's patterns that PackCloud counts as bots (all but the mail image proxies)."""
    return [entry["pattern"] for entry in CRAWLER_USER_AGENTS_DATA if entry["pattern"] not in MAIL_IMAGE_PROXIES]


def bot_pattern() -> str:
    """The one pattern: the list's (case-sensitive by design: its patterns tell "Bot" from "bot") and the additions
    (not)."""
    return combine(list_patterns(), ADDITIONS)


def build_matcher() -> re.Pattern[str]:
    """The whole expression compiled: what the app's matcher must answer exactly as (the tests' reference)."""
    return re.compile(bot_pattern())


def _plain_text(part: str) -> str | None:
    """The text a pattern (one alternative) matches, if that is all it matches, wherever it is; else None."""
    literal, rest = literal_prefix(part)
    return literal if literal and not rest else None


def split_patterns() -> tuple[list[str], list[str]]:
    """The list's patterns as alternatives: (the plain texts, the rest, which need a regular expression)."""
    texts, expressions = [], []
    for part in (part for pattern in list_patterns() for part in _alternatives(pattern)):
        text = _plain_text(part)
        if text is None:
            expressions.append(part)
        else:
            texts.append(text)
    return sorted(set(texts)), expressions


# CPython's own parser of regular expressions (private, but the one `re.compile` uses: what it calls a literal is
# exactly what the compiled pattern matches character for character). Used only here, when the data is made.
_PARSER = importlib.import_module("re._parser")


def required_text(part: str) -> str:
    """Text that every match of the pattern `part` contains (case-sensitively): its longest run of literal
    characters outside any group, repetition or class; "" when it has none or sets a global flag (`(?i)`)."""
    parsed = _PARSER.parse(part)
    if parsed.state.flags & (re.IGNORECASE | re.VERBOSE):
        return ""
    runs, run = [""], ""
    for op, argument in parsed:
        if op is _PARSER.LITERAL:
            run += chr(argument)
        else:
            runs.append(run)
            run = ""
    return str(max([*runs, run], key=len))


def _fewest(texts: Iterable[str]) -> list[str]:
    """The texts without those that hold another: where a longer one occurs, the shorter does too."""
    unique = sorted(set(texts), key=len)
    kept: list[str] = []
    for text in unique:
        if not any(shorter in text for shorter in kept):
            kept.append(text)
    return sorted(kept)


def matcher_data() -> dict[str, object]:
    """What bot_pattern.py matches with, as JSON data (loads in well under a millisecond, bytecode or not).

    `literals`: the list's plain-text patterns by the windows of WINDOW characters they hold at offsets below STEP,
    and the shorter ones in `short_literals`; a user agent containing one is a bot. `expression`: the list's other
    patterns and the additions, factored as `combine` does; `expression_needs` (case-sensitive) and
    `expression_needs_lowercase` (the additions', for an ASCII user agent in lowercase) hold text that each of its
    alternatives requires, so an ASCII user agent that holds none of them cannot match it. Together they match
    exactly where `bot_pattern()` does (tests/unit/test_bot_list.py)."""
    texts, expressions = split_patterns()
    additions = [part for addition in ADDITIONS for part in _alternatives(addition)]
    if not all(part.isascii() for part in additions):
        raise ValueError("an addition outside ASCII: its lowercase text would not decide a case-insensitive match")
    index: dict[str, list[str]] = {}
    for text in texts:
        if len(text) >= WINDOW + STEP - 1:
            for key in sorted({text[offset : offset + WINDOW] for offset in range(STEP)}):
                index.setdefault(key, []).append(text)
    return {
        "about": f"Written by `make bot-pattern` (shared/capture/bot_list.py) from crawler-user-agents "
        f"{version('crawler-user-agents')} and PackCloud's additions: do not edit.",
        "window": WINDOW,
        "step": STEP,
        "literals": index,
        "short_literals": [text for text in texts if len(text) < WINDOW + STEP - 1],
        "expression": combine(expressions, ADDITIONS),
        "expression_needs": _fewest(required_text(part) for part in expressions),
        "expression_needs_lowercase": _fewest(required_text(part).lower() for part in additions),
    }


def render() -> str:
    """The data file's text."""
    return json.dumps(matcher_data(), indent=1, sort_keys=True) + "\n"


def write_pattern(path: Path = PATTERN_FILE) -> bool:
    """Write the data the deployed app matches with; answers whether the file changed."""
    text = render()
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.write_text(text, encoding="utf-8")
    return True


if __name__ == "__main__":
    print(f"{PATTERN_FILE.name}: {'written' if write_pattern() else 'up to date'}")
