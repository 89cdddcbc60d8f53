"""The bot matcher the app uses, from the data bot_list.py made of the pinned `crawler-user-agents` list and
PackCloud's additions (bot_pattern.json, written by `make bot-pattern`).

Compiling the list as one regular expression took `re` 20 to 30 ms of every cold start. Most of its patterns are
plain text, so they are data here: a user agent is a bot when it contains one, found through an index of the
windows of a few characters that each holds, looked up for the windows at every other position of the user agent
(a frozenset intersection, in C). Only the patterns with regex syntax and the case-insensitive additions are
compiled, as one small expression (about 2.5 ms, on the first user agent that needs it, not at import: a new
instance's first request is usually a browser's), searched only when the user agent holds text that one of them
requires: a browser's seldom does. The answer is the whole expression's (`bot_list.bot_pattern()`) on every input
tried (tests/unit/test_bot_list.py); a call costs about half of searching that expression (bench/bots.py).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

PATTERN_FILE = Path(__file__).with_name("bot_pattern.json")
# The slices of a user agent's windows, made once for user agents up to this long, and per call for longer ones.
_PRESLICED = 2048


class BotMatcher:
    """`search(user_agent)`: whether any of the list's patterns or the additions matches, as `re.search` would."""

    __slots__ = (
        "_expression",
        "_index",
        "_keys",
        "_needs",
        "_needs_lowercase",
        "_pattern",
        "_short",
        "_slices",
        "_step",
        "_width",
    )

    def __init__(self, data: dict[str, object]) -> None:
        literals, width, step = data["literals"], data["window"], data["step"]
        short, needs, lowercase = data["short_literals"], data["expression_needs"], data["expression_needs_lowercase"]
        if not (
            isinstance(literals, dict)
            and isinstance(width, int)
            and isinstance(step, int)
            and isinstance(short, list)
            and isinstance(needs, list)
            and isinstance(lowercase, list)
        ):
            raise ValueError(f"{PATTERN_FILE.name} is not what `make bot-pattern` writes")
        self._index: dict[str, tuple[str, ...]] = {key: tuple(texts) for key, texts in literals.items()}
        self._keys = frozenset(self._index)
        self._short = tuple(short)
        self._pattern = str(data["expression"])
        self._expression: re.Pattern[str] | None = None  # compiled on first need
        self._needs, self._needs_lowercase = tuple(needs), tuple(lowercase)
        self._width, self._step = width, step
        self._slices = [slice(start, start + width) for start in range(0, _PRESLICED - width + 1, step)]

    def _windows(self, user_agent: str) -> list[slice]:
        """The windows at every STEP-th position, the last one included (bot_list.py: why that finds them all)."""
        if len(user_agent) <= _PRESLICED:
            return self._slices[: max((len(user_agent) - self._width) // self._step + 1, 0)]
        return [slice(start, start + self._width) for start in range(0, len(user_agent) - self._width + 1, self._step)]

    def search(self, user_agent: str) -> bool:
        for text in self._short:
            if text in user_agent:
                return True
        index = self._index
        for key in self._keys.intersection(map(user_agent.__getitem__, self._windows(user_agent))):
            for text in index[key]:
                if text in user_agent:
                    return True
        return self._expression_may_match(user_agent) and self._compiled().search(user_agent) is not None

    def _compiled(self) -> re.Pattern[str]:
        # Threads that race here each compile the same expression; any of the results serves.
        if self._expression is None:
            self._expression = re.compile(self._pattern)
        return self._expression

    def _expression_may_match(self, user_agent: str) -> bool:
        # Outside ASCII, `re` folds case beyond str.lower() (the long s matches `s`, the Kelvin sign `k`): no shortcut.
        if not user_agent.isascii():
            return True
        for text in self._needs:
            if text in user_agent:
                return True
        lowercase = user_agent.lower()
        for text in self._needs_lowercase:  # noqa: SIM110  # a loop: any() over a generator costs twice as much
            if text in lowercase:
                return True
        return False


def load_matcher() -> BotMatcher:
    return BotMatcher(json.loads(PATTERN_FILE.read_text(encoding="utf-8")))


BOT_MATCHER = load_matcher()
