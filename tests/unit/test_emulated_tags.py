"""The emulator's tag-query evaluator (shared/storage/emulated_tags.py): it understands every query PackCloud
builds, evaluates it as the service does, and refuses anything else, within bounds."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.storage.blobs import index_tags, tag_query
from shared.storage.emulated_tags import TERMS_MAX, WHERE_MAX, TagQuery, Term, UnsupportedTagQuery

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
EARLIER = datetime(2026, 2, 1, 12, tzinfo=UTC)
LATER = datetime(2026, 4, 1, 12, tzinfo=UTC)


def test_every_query_packcloud_builds_parses_to_its_terms():
    where = tag_query(tenant="contoso", dataset="visits", subject="ab12", captured_by=NOW, dead_letter=True)
    assert TagQuery.parse(where).terms == (
        Term("t", "=", "contoso"),
        Term("d", "=", "visits"),
        Term("sub", "=", "ab12"),
        Term("cap", "<=", "20260301T120000Z"),
        Term("dl", "=", "1"),
    )
    assert TagQuery.parse(tag_query(expired_by=NOW)).terms == (Term("exp", "<=", "20260301T120000Z"),)
    assert TagQuery.parse("\"exp\" < 'b' AND \"exp\" >= 'a' AND \"cap\" > ''").terms == (
        Term("exp", "<", "b"),
        Term("exp", ">=", "a"),
        Term("cap", ">", ""),
    )


def test_a_record_matches_as_the_service_matches_it():
    tags = index_tags("contoso", "visits", expires=NOW, captured=EARLIER, subject="ab12")
    assert TagQuery.parse(tag_query(tenant="contoso", dataset="visits", subject="ab12")).matches(tags)
    assert TagQuery.parse(tag_query(expired_by=NOW)).matches(tags)  # at the expiry: expired
    assert TagQuery.parse(tag_query(expired_by=LATER)).matches(tags)
    assert not TagQuery.parse(tag_query(expired_by=EARLIER)).matches(tags)
    assert not TagQuery.parse(tag_query(tenant="contoso", subject="ab13")).matches(tags)
    assert not TagQuery.parse(tag_query(tenant="contos")).matches(tags)  # equality, not a prefix
    # A term about a tag the blob lacks never holds, whatever its operator.
    assert not TagQuery.parse(tag_query(tenant="contoso", dead_letter=True)).matches(tags)
    assert not TagQuery.parse("\"dl\" >= ''").matches(tags)
    assert TagQuery.parse("\"exp\" > '20260301T115959Z' AND \"exp\" < '20260301T120001Z'").matches(tags)


def test_the_tenant_a_query_is_scoped_to_is_its_equality_on_the_tenant_tag():
    assert TagQuery.parse(tag_query(tenant="contoso", captured_by=NOW)).equal_to("t") == "contoso"
    assert TagQuery.parse(tag_query(expired_by=NOW)).equal_to("t") is None
    assert TagQuery.parse("\"t\" >= 'contoso'").equal_to("t") is None


@pytest.mark.parametrize(
    "where",
    [
        "",
        "\"t\" = 'a' OR \"t\" = 'b'",
        "\"t\" = 'a' and \"d\" = 'b'",
        "\"t\"='a'",
        "t = 'a'",
        "@container = 'records'",
        "\"t\" = 'a' AND @container = 'records'",
        "\"t\" <> 'a'",
        "\"t\" = 'it''s'",
        "\"t\" = 'a' AND ",
        "(\"t\" = 'a')",
        '"t" = \'a"\'',
        "\"\" = 'a'",
        '"t" = \'' + "a" * 257 + "'",
        " AND ".join(f"\"k{n}\" = 'v'" for n in range(TERMS_MAX + 1)),
        '"t" = \'' + "a" * WHERE_MAX + "'",
    ],
)
def test_anything_else_is_refused_with_a_clear_error_that_quotes_nothing(where):
    with pytest.raises(UnsupportedTagQuery) as refused:
        TagQuery.parse(where)
    assert "'a'" not in str(refused.value) and "records" not in str(refused.value)


def test_the_most_terms_allowed_parse():
    where = " AND ".join(f"\"k{n}\" = 'v'" for n in range(TERMS_MAX))
    assert len(TagQuery.parse(where).terms) == TERMS_MAX
