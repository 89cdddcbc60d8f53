from datetime import UTC, datetime

import pytest

from shared.autonumber.format import RAND_ALPHABET, parse_format, render
from shared.autonumber.sequences import SequenceDefinition, check_definition
from shared.core.errors import Unprocessable

WHEN = datetime(2026, 11, 23, 9, 5, 7, tzinfo=UTC)


@pytest.mark.parametrize(
    ("fmt", "seq", "value"),
    [
        ("INV-{DATETIMEUTC:yyyy}-{SEQNUM:6}", 1000, "INV-2026-001000"),
        ("{SEQNUM:3}", 1234567, "1234567"),
        ("CASE{DATETIMEUTC:yyMMdd}/{SEQNUM:4}", 7, "CASE261123/0007"),
        ("{DATETIMEUTC:yyyy-MM-dd HH:mm:ss} #{SEQNUM:1}", 5, "2026-11-23 09:05:07 #5"),
    ],
)
def test_formats_render(fmt, seq, value):
    assert render(parse_format(fmt), seq, WHEN, b"k") == value


def test_randstring_is_unambiguous_and_repeatable():
    tokens = parse_format("{RANDSTRING:6}-{SEQNUM:4}")
    first = render(tokens, 1000, WHEN, b"key")
    assert first == render(tokens, 1000, WHEN, b"key")
    assert first != render(tokens, 1000, WHEN, b"other key")
    letters = first.split("-")[0]
    assert len(letters) == 6 and set(letters) <= set(RAND_ALPHABET)
    assert not set("IO01") & set(RAND_ALPHABET)


@pytest.mark.parametrize(
    ("fmt", "points_at"),
    [
        ("INV-{COUNTER:4}", "{COUNTER:4}"),
        ("{RANDSTRING:7}{SEQNUM:4}", "RANDSTRING:7"),
        ("{RANDSTRING:0}{SEQNUM:4}", "RANDSTRING:0"),
        ("INV-{DATETIMEUTC:yyyy}", "exactly one {SEQNUM:n}"),
        ("{SEQNUM:4}{SEQNUM:4}", "more than one"),
        ("{SEQNUM:x}", "SEQNUM:x"),
        ("{SEQNUM:4}-{DATETIMEUTC:yyyyQ}", "'Q'"),
        ("{SEQNUM:4}}", "brace"),
        ("", "1 to 100"),
    ],
)
def test_bad_formats_point_at_the_token(fmt, points_at):
    with pytest.raises(Unprocessable) as caught:
        parse_format(fmt)
    assert points_at in caught.value.detail
    assert caught.value.body()["errors"][0]["field"] == "format"


@pytest.mark.parametrize(
    ("fmt", "reset", "ok"),
    [
        ("{SEQNUM:4}", "never", True),
        ("{SEQNUM:4}", "yearly", False),
        ("{DATETIMEUTC:yy}-{SEQNUM:4}", "yearly", True),
        ("{DATETIMEUTC:yyyy}-{SEQNUM:4}", "monthly", False),
        ("{DATETIMEUTC:yyyyMM}-{SEQNUM:4}", "monthly", True),
        ("{DATETIMEUTC:yyyyMM}-{SEQNUM:4}", "daily", False),
        ("{DATETIMEUTC:yyyyMMdd}-{SEQNUM:4}", "daily", True),
    ],
)
def test_a_reset_needs_the_period_in_the_value(fmt, reset, ok):
    definition = SequenceDefinition(format=fmt, reset=reset)
    if ok:
        check_definition(definition)
    else:
        with pytest.raises(Unprocessable, match="would repeat"):
            check_definition(definition)
