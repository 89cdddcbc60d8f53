"""Bot detection from the maintained list: recall on the list's own examples, no current browser taken for a
bot (tests/data/browser_user_agents.txt), the one factored expression agreeing with every pattern on its own, and
the app's matcher (plain texts as data, a small expression) agreeing with that expression on every input tried.
The same figures, with the cost of a call, are bench/bots.py's."""

from __future__ import annotations

import random
import re
import string

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
    whole = bot_list.build_matcher()
    disagreeing = [
        agent for agent in agents if (whole.search(agent) is not None) != any(pattern.search(agent) for pattern in each)
    ]
    assert disagreeing == []


def _generated_user_agents() -> list[str]:
    """Every plain-text pattern and every text the expression requires, whole and cut at either end, in its own
    case and others, alone and inside random text at each offset (the matcher probes every other position), next
    to characters outside ASCII that `re` folds to ASCII ones, and inside user agents longer than the matcher's
    presliced windows."""
    rng = random.Random(21)
    data = bot_list.matcher_data()
    texts, _ = bot_list.split_patterns()
    needs = [*data["expression_needs"], *data["expression_needs_lowercase"], "cubot", "Cubot", "bots"]
    noise = string.ascii_letters + string.digits + " ;/()._-:!"
    agents = []
    for text in [*texts, *needs, *bot_list.ADDITIONS]:
        for variant in {text, text[1:], text[:-1], text.upper(), text.lower(), text.swapcase(), text[::-1]}:
            before = "".join(rng.choices(noise, k=rng.randrange(0, 9)))
            after = "".join(rng.choices(noise, k=rng.randrange(0, 9)))
            agents += [variant, before + variant + after, f"Mozilla/5.0 ({before}) {variant}"]
    # The long s, the Kelvin sign, the dotted and dotless i, an e with an accent: the first three match s, k and i
    # case-insensitively in `re`, where str.lower() leaves them alone.
    for ascii_letter, letter_like in (
        ("s", "\u017f"),
        ("k", "\u212a"),
        ("i", "\u0130"),
        ("i", "\u0131"),
        ("e", "\u00e9"),
    ):
        for text in bot_list.ADDITIONS:
            agents += [
                text.replace(ascii_letter, letter_like),
                "Mozilla " + text.upper().replace(ascii_letter.upper(), letter_like),
            ]
    browsers = bots.browser_user_agents()
    agents += [browser + " " * pad + text for browser in browsers[:3] for pad in range(3) for text in texts[::50]]
    agents += ["z" * 3000] + [
        filler * length + text for filler in "xy" for length in (2045, 2046, 2047, 2100, 2101) for text in texts[::40]
    ]
    agents += ["Wget"[:cut] for cut in range(5)]
    return agents


def test_the_apps_matcher_answers_as_the_whole_expression_on_every_input():
    whole = bot_list.build_matcher()
    agents = [agent for _, agent in bots.examples()] + bots.browser_user_agents() + _generated_user_agents()
    assert len(agents) > 20_000
    disagreeing = [agent for agent in agents if bot_pattern.BOT_MATCHER.search(agent) != bool(whole.search(agent))]
    assert disagreeing == []
    # Both answers occur: the comparison is not between two matchers that say the same thing of everything.
    assert 0.2 < sum(map(bot_pattern.BOT_MATCHER.search, agents)) / len(agents) < 0.98


@pytest.mark.parametrize(
    ("pattern", "required"),
    [
        ("link ?preview", "preview"),
        ("bot\\b(?<!cubot)", "bot"),
        ("(sistrix|SISTRIX) [cC]rawler", "rawler"),
        ("BlogTraffic\\/\\d\\.\\d+ Feed-Fetcher", " Feed-Fetcher"),
        ("^Seekbot", "Seekbot"),
        ("colou?r", "colo"),
        ("(?i)Bot", ""),
        ("[\\s\\S]*", ""),
    ],
)
def test_required_text_is_text_every_match_holds(pattern, required):
    assert bot_list.required_text(pattern) == required


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


def test_the_deployed_data_is_what_the_pinned_list_and_the_additions_make():
    # A raised list version or a changed addition without `make bot-pattern` would leave the app on the old one.
    assert bot_list.PATTERN_FILE == bot_pattern.PATTERN_FILE
    assert bot_pattern.PATTERN_FILE.read_text(encoding="utf-8") == bot_list.render(), "run `make bot-pattern`"
    assert "crawler-user-agents 1." in bot_list.matcher_data()["about"]


def test_write_pattern_writes_only_when_it_changed(tmp_path):
    target = tmp_path / "bot_pattern.json"
    assert bot_list.write_pattern(target) is True
    assert target.read_text(encoding="utf-8") == bot_list.render()
    assert bot_list.write_pattern(target) is False
    target.write_text("stale", encoding="utf-8")
    assert bot_list.write_pattern(target) is True


def test_the_small_expression_is_compiled_on_the_first_user_agent_that_needs_it_not_at_import():
    matcher = bot_pattern.load_matcher()
    for browser in bots.browser_user_agents():  # none holds text the expression requires
        assert not matcher.search(browser)
    assert matcher._expression is None
    assert matcher.search("Some CRAWLer/1.0")  # "crawl" in any case: only the expression has it
    assert isinstance(matcher._expression, re.Pattern)
