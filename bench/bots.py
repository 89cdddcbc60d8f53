"""Bot detection against data nobody here wrote: recall on the `crawler-user-agents` package's own example user
agents, false positives on current browsers' user agents (tests/data/browser_user_agents.txt), and the cost of
one `is_bot` call, in process.

Recall counts the examples PackCloud takes for bots: all but the mail image proxies', which count as people
on purpose (shared/capture/bot_list.py); the recall over every example is reported too. The cost of a call is
compared with the plain alternative, the same patterns joined into one `|` alternation, timed in the same run,
interleaved: a pixel hit pays it once, whoever sends it. So is the cost of a call to the whole factored expression
(`bot_list.bot_pattern()`), which the app compiled at import until the matcher kept the plain-text patterns as data
(shared/capture/bot_pattern.py): its answer is the same on every input. So is the cost of making the app's matcher,
paid once per process at import (the cold start shows it within the whole import), beside compiling that whole
expression.

Targets: recall >= 0.99, false positives 0, a call at most a tenth of the plain alternation's.
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Callable
from importlib.metadata import version

from crawleruseragents import CRAWLER_USER_AGENTS_DATA

from bench.common import write_results
from devenv.azurite import ROOT
from shared.capture import bot_list, bot_pattern
from shared.capture.visitors import is_bot

BROWSERS = ROOT / "tests" / "data" / "browser_user_agents.txt"
MIN_RECALL = 0.99
MAX_COST_RATIO = 0.1
ROUNDS = 7
CALLS = 200


def examples() -> list[tuple[str, str]]:
    """(pattern, example user agent) for every example the package ships."""
    return [(entry["pattern"], agent) for entry in CRAWLER_USER_AGENTS_DATA for agent in entry.get("instances", [])]


def browser_user_agents() -> list[str]:
    lines = BROWSERS.read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.strip() and not line.startswith("#")]


def detection() -> dict[str, object]:
    every = examples()
    bots = [(pattern, agent) for pattern, agent in every if pattern not in bot_list.MAIL_IMAGE_PROXIES]
    missed = sorted({pattern for pattern, agent in bots if not is_bot(agent)})
    browsers = browser_user_agents()
    return {
        "recall": round(sum(is_bot(agent) for _, agent in bots) / len(bots), 4),
        "recall_all_examples": round(sum(is_bot(agent) for _, agent in every) / len(every), 4),
        "examples": len(every),
        "bot_examples": len(bots),
        "missed_patterns": missed,
        "browsers": len(browsers),
        "false_positives": [agent for agent in browsers if is_bot(agent)],
    }


def plain_alternation() -> re.Pattern[str]:
    """What joining the same patterns would give: Python's `re` tries each one at every position."""
    return re.compile(f"{'|'.join(bot_list.list_patterns())}|(?i:{'|'.join(bot_list.ADDITIONS)})")


def _per_call_us(search: Callable[[str], object], agents: list[str]) -> float:
    started = time.perf_counter()
    for _ in range(CALLS // len(agents) + 1):
        for agent in agents:
            search(agent)
    return (time.perf_counter() - started) / ((CALLS // len(agents) + 1) * len(agents)) * 1e6


def _build_ms(build: Callable[[], object]) -> float:
    re.purge()  # re caches compiled patterns; a new process has none
    started = time.perf_counter()
    build()
    return (time.perf_counter() - started) * 1000


def cost() -> dict[str, float]:
    # People are the common case, and the costly one: no pattern matches, so every position is tried.
    agents = browser_user_agents()
    plain, whole = plain_alternation(), bot_list.build_matcher()
    ours, theirs, wholes, builds, whole_builds = [], [], [], [], []
    for _ in range(ROUNDS):
        ours.append(_per_call_us(is_bot, agents))
        theirs.append(_per_call_us(plain.search, agents))
        wholes.append(_per_call_us(whole.search, agents))
        builds.append(_build_ms(bot_pattern.load_matcher))
        whole_builds.append(_build_ms(bot_list.build_matcher))
    per_call, plain_per_call = statistics.median(ours), statistics.median(theirs)
    return {
        "per_call_us": round(per_call, 1),
        "plain_per_call_us": round(plain_per_call, 1),
        "cost_ratio": round(per_call / plain_per_call, 3),
        "whole_expression_per_call_us": round(statistics.median(wholes), 1),
        "whole_expression_ratio": round(per_call / statistics.median(wholes), 3),
        "build_ms": round(statistics.median(builds), 1),
        "whole_expression_compile_ms": round(statistics.median(whole_builds), 1),
    }


def main() -> dict[str, object]:
    result = {**detection(), **cost(), "list_version": version("crawler-user-agents")}
    write_results("bots", result)
    print(
        f"bots: crawler-user-agents {result['list_version']}: recall {result['recall']} on its "
        f"{result['bot_examples']} bot examples ({result['recall_all_examples']} on all {result['examples']}, mail "
        f"image proxies included), missed {result['missed_patterns']}; false positives "
        f"{len(result['false_positives'])} of {result['browsers']} browsers {result['false_positives']}; "
        f"is_bot {result['per_call_us']} us a call vs the plain alternation {result['plain_per_call_us']} us "
        f"(ratio {result['cost_ratio']}), the whole expression {result['whole_expression_per_call_us']} us (ratio "
        f"{result['whole_expression_ratio']}); making the matcher {result['build_ms']} ms, compiling the whole "
        f"expression {result['whole_expression_compile_ms']} ms "
        f"(targets: recall >= {MIN_RECALL}, false positives 0, ratio <= {MAX_COST_RATIO})"
    )
    return result


if __name__ == "__main__":
    main()
