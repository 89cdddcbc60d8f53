"""The bot matcher the app uses: the pattern bot_list.py made from the pinned `crawler-user-agents` list and
PackCloud's additions, compiled once at import (about 18 ms, the cost of `re` compiling 21 KB of pattern).

The pattern is a file, written by `make bot-pattern`: reading it costs nothing next to making it from the list at
every cold start."""

from __future__ import annotations

import re
from pathlib import Path

PATTERN_FILE = Path(__file__).with_name("bot_pattern.txt")


def load_matcher() -> re.Pattern[str]:
    return re.compile(PATTERN_FILE.read_text(encoding="utf-8"))


BOT_MATCHER = load_matcher()
