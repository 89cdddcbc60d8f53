"""Find Blobs by Tags on the local emulator only: a listing of the blobs with their tags, the query evaluated here.

Azurite (3.37.0, the pinned version; its main branch is unchanged as of August 2026) answers Find Blobs by Tags
from the container's first page of blobs only: `FilterBlobPage.fill` (src/blob/persistence/FilterBlobPage.ts)
advances by the matches rather than by the blobs it read, and gives no continuation when a page holds none, so a
blob after the first `maxresults` blobs of the container is never found. Real Blob Storage has no such limit.
`Storage` sends its tag queries that name a tenant here when its account is the emulator's (blobs.py says why the
others are not, and imports this module only then); in Azure the service's index answers.

Only the queries `blobs.tag_query` builds are understood: `"tag" op 'value'` terms (op one of = < <= > >=)
joined by AND. Anything else is refused with `UnsupportedTagQuery`, as no PackCloud query needs it.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from azure.storage.blob import ContainerClient

LIST_PAGE = 5000  # names one listing request answers at most (the service's maximum)
# The service's bounds: at most 10 tags in a query, names 1 to 128 and values 0 to 256 of these characters.
TERMS_MAX = 10
WHERE_MAX = TERMS_MAX * (128 + 256 + 16)
_TAG_CHARS = r"[A-Za-z0-9 +\-./:=_]"
_TERM = re.compile(rf"\"({_TAG_CHARS}{{1,128}})\" (=|<=|<|>=|>) '({_TAG_CHARS}{{0,256}})'")
_AND = " AND "
# Tag values compare as text (code points, the order of their UTF-8 bytes), as the service compares them.
_COMPARE: dict[str, Callable[[str, str], bool]] = {
    "=": operator.eq,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


class UnsupportedTagQuery(ValueError):
    """A tag query this evaluator does not understand; the message names the rule, never the query."""


@dataclass(frozen=True)
class Term:
    tag: str
    op: str
    value: str

    def holds(self, tags: Mapping[str, str]) -> bool:
        """Whether the blob's tags satisfy the term; a blob without the tag satisfies no term about it."""
        found = tags.get(self.tag)
        return found is not None and _COMPARE[self.op](found, self.value)


@dataclass(frozen=True)
class TagQuery:
    terms: tuple[Term, ...]

    @classmethod
    def parse(cls, where: str) -> TagQuery:
        if len(where) > WHERE_MAX:
            raise UnsupportedTagQuery(f"a tag query is at most {WHERE_MAX} characters")
        terms: list[Term] = []
        position = 0
        while True:
            found = _TERM.match(where, position)
            if found is None or len(terms) == TERMS_MAX:
                raise UnsupportedTagQuery(
                    f"a tag query is 1 to {TERMS_MAX} terms \"tag\" op 'value' (op one of = < <= > >=) joined by AND"
                )
            terms.append(Term(*found.groups()))
            position = found.end()
            if position == len(where):
                return cls(tuple(terms))
            if not where.startswith(_AND, position):
                raise UnsupportedTagQuery("tag query terms are joined by AND only")
            position += len(_AND)

    def matches(self, tags: Mapping[str, str]) -> bool:
        return all(term.holds(tags) for term in self.terms)

    def equal_to(self, tag: str) -> str | None:
        """The value the query requires `tag` to equal, if it requires one."""
        return next((term.value for term in self.terms if term.tag == tag and term.op == "="), None)


def matching(
    client: ContainerClient, query: TagQuery, prefix: str, marker: str | None, options: Mapping[str, Any]
) -> Iterator[str]:
    """Names under `prefix` after `marker` (a blob name: Azurite lists the names after its marker), in name
    order, whose tags satisfy the query."""
    listed = client.list_blobs(name_starts_with=prefix or None, include=["tags"], results_per_page=LIST_PAGE, **options)
    for page in listed.by_page(marker):
        for blob in page:
            if query.matches(blob.tags or {}):
                yield blob.name


def find_page(
    client: ContainerClient, query: TagQuery, prefix: str, marker: str | None, page_size: int
) -> tuple[list[str], str | None]:
    """At most `page_size` matching names after `marker`, and the marker of the next page: the last name given,
    only when another match follows it (None: the query is done), as the service's contract."""
    if page_size < 1:
        raise ValueError("a page holds at least one name")
    names: list[str] = []
    for name in matching(client, query, prefix, marker, {}):
        if len(names) == page_size:
            return names, names[-1]
        names.append(name)
    return names, None
