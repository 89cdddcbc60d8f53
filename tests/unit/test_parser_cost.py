"""Every request parser's cost on the worst bodies that can be built at the size limit stays within a bounded
multiple of a normal post of the same size, measured in the same run (bench/parsers.py): a ratio, never a
time. Python's email parser, which read multipart forms before, took tens of seconds for one such body."""

from __future__ import annotations

import pytest

from bench import parsers


@pytest.mark.parametrize("name", sorted(parsers.PARSERS))
def test_the_worst_bodies_cost_a_bounded_multiple_of_a_normal_post(name):
    parser = parsers.PARSERS[name]()
    assert parsers.outcome(parser.parse, parser.normal) == "accepted"
    assert len(parser.normal) > 0.95 * parsers.LIMIT
    results = parsers.measure(parser)
    # Every shape is parsed or refused with a 4xx, never an exception that would be a 500.
    unanswered = {
        s: r["outcome"] for s, r in results.items() if not (r["outcome"] == "accepted" or r["outcome"][0] == "4")
    }
    assert not unanswered
    too_costly = {shape: r for shape, r in results.items() if r["ratio"] > parsers.MAX_RATIO}
    assert not too_costly, f"over {parsers.MAX_RATIO}x a normal post: {too_costly}"


def test_the_worst_bodies_are_at_the_size_limit():
    for parser in parsers.parsers():
        sizes = {shape: len(body) for shape, body in parser.hostile.items() if shape != "infinite_float"}
        assert all(parsers.LIMIT * 0.95 < size <= parsers.LIMIT for size in sizes.values()), (parser.name, sizes)
