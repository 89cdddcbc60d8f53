"""Bot detection from the maintained list: recall on the list's own examples, no current browser taken for a
bot (tests/data/browser_user_agents.txt), and the one factored matcher agreeing with every pattern on its own.
The same figures, with the cost of a call, are bench/bots.py's."""

from __future__ import annotations

import re

import pytest

from bench import bots
from shared.capture import bot_list, bot_pattern
from shared.capture.visitors import is_bot


def test_no_current_browser_is_a_bot():
    browsers = bots.browser_user_agents()
    assert len(browsers) >= 100
    for family in ("Edg/", "EdgA/", "Firefox/", "FxiOS/", "CriOS/", "Version/", "SamsungBrowser/", "OPR/"):
        assert any(family in agent for agent in browsers), family
    assert [agent for agent in browsers if is_bot(agent)] == []


def test_recall_on_the_lists_own_examples_is_at_least_99_percent():
    result = bots.detection()
    assert result["bot_examples"] > 2000
    assert result["recall"] >= bots.MIN_RECALL, result["missed_patterns"]
    assert result["recall_all_examples"] >= bots.MIN_RECALL
    assert result["false_positives"] == []


def test_the_factored_matcher_matches_exactly_where_one_of_its_patterns_does():
    each = [re.compile(p) for p in bot_list.list_patterns()]
    each += [re.compile(addition, re.IGNORECASE) for addition in bot_list.ADDITIONS]
    agents = [agent for _, agent in bots.examples()] + bots.browser_user_agents()
    agents += ["", "x", "Seekbot at the start", "no Seekbot here", "wGET/1.2", "Wget/1.21", "SISTRIX Crawler"]
    disagreeing = [
        agent
        for agent in agents
        if (bot_pattern.BOT_MATCHER.search(agent) is not None) != any(pattern.search(agent) for pattern in each)
    ]
    assert disagreeing == []


@pytest.mark.parametrize(
    ("patterns", "ignore_case", "matching", "not_matching"),
    [
        (["ab", "abc\\/d", "x+y"], (), ["zab", "xxy", "abc/d"], ["a b", "xz", "AB"]),
        (["colou?r", "a\\.b", "x\\/?z"], (), ["color", "colour", "a.b", "xz", "x/z"], ["colouur", "axb", "x//z"]),
        (["^Start", "end$"], (), ["Start here", "the end"], ["a Start", "end here"]),
        (["[wW]get", "one|two(three|four)"], (), ["wget", "Wget", "one", "twofour"], ["WGET", "two"]),
        (["Bot"], ["curl/", "bot\\b(?<!cubot)"], ["Bot", "CURL/8", "a bot", "ROBOT"], ["cubot x", "Curly", "bots"]),
        (["abc", "ab"], (), ["ab"], ["a"]),
    ],
)
def test_combine_keeps_each_patterns_meaning(patterns, ignore_case, matching, not_matching):
    combined = re.compile(bot_list.combine(patterns, ignore_case))
    assert [text for text in matching if not combined.search(text)] == []
    assert [text for text in not_matching if combined.search(text)] == []


def test_the_mail_image_proxies_are_the_lists_and_count_as_people():
    named = {entry["pattern"]: entry for entry in bots.CRAWLER_USER_AGENTS_DATA}
    # A renamed pattern upstream would make a mail proxy a bot again without this.
    assert named.keys() >= bot_list.MAIL_IMAGE_PROXIES
    for pattern in bot_list.MAIL_IMAGE_PROXIES:
        assert not any(is_bot(agent) for agent in named[pattern]["instances"])


def test_the_deployed_pattern_is_what_the_pinned_list_and_the_additions_make():
    # A raised list version or a changed addition without `make bot-pattern` would leave the app on the old one.
    assert bot_list.PATTERN_FILE == bot_pattern.PATTERN_FILE
    assert bot_pattern.PATTERN_FILE.read_text(encoding="utf-8") == bot_list.bot_pattern(), "run `make bot-pattern`"
    assert bot_pattern.BOT_MATCHER.pattern == bot_list.bot_pattern()


def test_write_pattern_writes_only_when_it_changed(tmp_path):
    target = tmp_path / "bot_pattern.txt"
    assert bot_list.write_pattern(target) is True
    assert target.read_text(encoding="utf-8") == bot_list.bot_pattern()
    assert bot_list.write_pattern(target) is False
    target.write_text("stale", encoding="utf-8")
    assert bot_list.write_pattern(target) is True
