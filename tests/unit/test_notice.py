"""The public notice: the `notice` option of a dataset, the choice of language and format, the words and the
escaping of the page (shared/notice/)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

import pytest

from shared.core.bodies import validate_model
from shared.core.errors import Unprocessable
from shared.notice.content import build_notice
from shared.notice.languages import HEADER_MAX_CHARS, ITEMS_MAX, choose_language, wants_json, weighted
from shared.notice.page import NOT_FOUND_PAGE, render_notice
from shared.registry.models import MAX_NOTICE_LANGUAGES, Dataset, DatasetDoc
from tests.factories import CONTRACT_FORM, EXAMPLE, FORM, variant

GERMAN = {"purpose": "Wir melden uns bei Interessenten, die die Preisseite besuchen", "fields": {"ip": "Ihre IP"}}
WORDED = variant(notice={"languages": {"de": GERMAN, "fr-CH": {"purpose": "Suivre les prospects"}}})


def doc(declaration: dict[str, Any], dataset: str = "visits") -> DatasetDoc:
    now = datetime(2026, 11, 27, tzinfo=UTC)
    return DatasetDoc(**declaration, tenant="contoso", id=dataset, created_at=now, updated_at=now)


def page(declaration: dict[str, Any], language: str = "en") -> str:
    return render_notice(build_notice(doc(declaration), "eu", language))


def text_of(html: str) -> str:
    """What a reader sees: the text of the page, tags gone, entities resolved."""
    chunks: list[str] = []

    class Text(HTMLParser):
        def handle_data(self, data: str) -> None:
            chunks.append(data)

    Text().feed(html)
    return re.sub(r"\s+", " ", "".join(chunks))


# ---------------------------------------------------------------- the notice option of a dataset


def test_a_dataset_may_give_its_notice_wording_per_language():
    dataset = Dataset.model_validate(WORDED)
    assert dataset.notice is not None
    assert set(dataset.notice.languages) == {"de", "fr-CH"}
    assert dataset.notice.languages["de"].fields == {"ip": "Ihre IP"}
    assert Dataset.model_validate(EXAMPLE).notice is None  # optional


@pytest.mark.parametrize(
    ("notice", "field"),
    [
        ({"languages": {}}, "notice.languages"),
        ({"languages": {"german": {"purpose": "Wir folgen"}}}, "notice.languages.german.[key]"),
        ({"languages": {"x-private": {"purpose": "Wir folgen"}}}, "notice.languages.x-private.[key]"),
        # The tag is named as dropped names are shown: markup as ?, so an error never carries it back.
        ({"languages": {"de<b>": {"purpose": "Wir folgen"}}}, "notice.languages.de?b?.[key]"),
        ({"languages": {"de": {"purpose": "x" * 1001}}}, "notice.languages.de.purpose"),
        ({"languages": {"de": {"purpose": "ab"}}}, "notice.languages.de.purpose"),
        ({"languages": {"de": {"purpose": "Wir folgen", "colour": "red"}}}, "notice.languages.de.colour"),
        ({"languages": {"de": {"purpose": "Wir", "fields": {"ip": "y" * 301}}}}, "notice.languages.de.fields.ip"),
        ({"languages": {"de": {"purpose": "Wir folgen"}}, "default": "de"}, "notice.default"),
        ({"languages": {f"d{chr(97 + i // 26)}{chr(97 + i % 26)}": GERMAN for i in range(21)}}, "notice.languages"),
    ],
)
def test_a_notice_out_of_bounds_is_a_422_naming_it(notice, field):
    with pytest.raises(Unprocessable) as caught:
        validate_model(Dataset, variant(notice=notice), "invalid_dataset", "dataset")
    assert field in [error["field"] for error in caught.value.body()["errors"]]


@pytest.mark.parametrize(
    "notice",
    [
        {"languages": {"de": GERMAN, "DE": GERMAN}},  # tags compare without regard to case
        {"languages": {"de": {"purpose": "Wir folgen", "fields": {"email": "E-Mail"}}}},  # not a declared field
    ],
)
def test_repeated_languages_and_undeclared_fields_are_refused(notice):
    with pytest.raises(Unprocessable):
        validate_model(Dataset, variant(notice=notice), "invalid_dataset", "dataset")


def test_the_language_count_bound_is_the_documented_one():
    tags = [f"d{chr(97 + i // 26)}{chr(97 + i % 26)}" for i in range(MAX_NOTICE_LANGUAGES)]
    dataset = Dataset.model_validate(variant(notice={"languages": dict.fromkeys(tags, GERMAN)}))
    assert dataset.notice is not None
    assert len(dataset.notice.languages) == MAX_NOTICE_LANGUAGES == 20


# ---------------------------------------------------------------- the reader's language


@pytest.mark.parametrize(
    ("header", "chosen"),
    [
        (None, "en"),
        ("", "en"),
        ("de", "de"),
        ("DE", "de"),
        ("de-CH-1996", "de"),  # lookup: the range shortened subtag by subtag
        ("fr", "fr-CH"),  # a tag the range is a prefix of
        ("fr-ch", "fr-CH"),
        ("it, de;q=0.5", "de"),
        ("fr;q=0.4, de;q=0.9", "de"),
        ("en, de", "en"),
        ("*", "en"),
        ("de;q=0", "en"),  # q=0: not acceptable
        ("de;q=0, *;q=0.1", "en"),
        ("de;q=2", "en"),  # not a quality value: the item is skipped
        ("de;q=0.1234", "en"),
        ("de;q=abc, fr;q=0.3", "fr-CH"),
        ("<script>, de", "de"),
        (";;;,,,", "en"),
        ("fr-CH;level=1;q=0.5, it", "fr-CH"),
    ],
)
def test_the_language_is_chosen_by_accept_language(header, chosen):
    assert choose_language(header, ["de", "fr-CH"]) == chosen


def test_the_dataset_may_reword_english_itself():
    assert choose_language("en-GB", ["EN", "de"]) == "EN"


def test_the_header_parser_bounds_its_work():
    assert len(weighted(",".join(["de"] * 10_000))) == ITEMS_MAX
    # Past the bound, an item is not read at all: the German here is too far in.
    far = " " * HEADER_MAX_CHARS + "de"
    assert choose_language(far, ["de"]) == "en"
    assert choose_language("x" * 100_000, ["de"]) == "en"


@pytest.mark.parametrize(
    ("accept", "format_param", "json"),
    [
        (None, None, False),
        ("*/*", None, False),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", None, False),
        ("application/json", None, True),
        ("application/json, */*", None, True),
        ("text/html;q=0.5, application/json", None, True),
        ("application/json;q=0.5, text/html", None, False),
        ("text/html", "json", True),
        ("application/json", "html", False),
    ],
)
def test_json_when_asked_for_html_otherwise(accept, format_param, json):
    assert wants_json(accept, format_param) is json


# ---------------------------------------------------------------- what the notice says


def test_the_notice_says_what_why_how_long_where_who_and_the_rights():
    text = text_of(page(EXAMPLE))
    for said in (
        "Follow up on leads who visit the pricing page",  # the purpose
        "page_url",
        "your internet (IP) address, shortened",
        "your consent (GDPR article 6(1)(a))",
        "delivered into Contoso Ltd's CRM",
        "deleted 14 days after it was collected",
        "the European Union",
        "Contoso Ltd (privacy@contoso.example)",
        "Jane Roe (dpo@contoso.example)",
        "a copy of the data held about you",
        "erased",
        "object to this processing",
        "withdraw your consent",
    ):
        assert said in text, said


def test_withdrawing_consent_is_offered_only_where_the_basis_is_consent():
    contract = build_notice(doc(CONTRACT_FORM), "eu", "en")
    assert {right.right for right in contract.rights} >= {"access", "erasure", "objection"}
    assert "withdraw_consent" not in {right.right for right in contract.rights}
    assert "withdraw" not in text_of(render_notice(contract)).lower()
    assert "withdraw_consent" in {right.right for right in build_notice(doc(FORM), "eu", "en").rights}


def test_a_notice_without_a_dpo_says_whom_to_write_to():
    text = text_of(page(FORM))
    assert "named no data protection officer" in text
    assert "write to privacy@contoso.example." in text


def test_the_region_is_named_in_words():
    assert "Brazil" in build_notice(doc(EXAMPLE), "br", "en").region_text
    assert "the United States" in build_notice(doc(EXAMPLE), "us", "en").region_text


def test_the_dataset_own_wording_is_shown_in_its_language_and_marked_so():
    html = page(WORDED, "de")
    assert f'<span lang="de">{GERMAN["purpose"]}</span>' in html
    assert '<span lang="de">Ihre IP</span>' in html
    assert '<html lang="en">' in html  # the rest of the page is English
    assert "Follow up on leads" not in html
    notice = build_notice(doc(WORDED), "eu", "fr-CH")
    assert (notice.purpose, notice.languages) == ("Suivre les prospects", ("en", "de", "fr-CH"))
    assert build_notice(doc(WORDED), "eu", "en").purpose == EXAMPLE["purpose"]


# ---------------------------------------------------------------- escaping


HOSTILE = "<script>alert(1)</script><img src=x onerror=alert(2)>\"'&"


def test_every_value_is_escaped():
    declaration = {
        **CONTRACT_FORM,  # its purpose holds a <script> element
        "controller": {"name": HOSTILE, "email": "privacy@contoso.example"},
        "dpo": {"name": HOSTILE, "email": "dpo@contoso.example"},
        "fields": [{"name": "email", "type": "email", "required": True, "description": HOSTILE}],
        "notice": {"languages": {"de": {"purpose": HOSTILE, "fields": {"email": HOSTILE}}}},
    }
    for language in ("en", "de"):
        html = page(declaration, language)
        assert "<script" not in html.lower()
        assert "<img" not in html.lower()
        assert "onerror=alert(2)>" not in html
        assert "&lt;script&gt;" in html
        assert HOSTILE in text_of(html)  # shown as text, as written


def test_the_page_is_self_contained_and_has_no_script():
    html = page(EXAMPLE)
    assert "<script" not in html.lower()
    assert not re.search(r"""(src|href)=["'](https?:)?//""", html)  # nothing is loaded from elsewhere
    assert "<link" not in html.lower()


def test_the_not_found_page_reveals_nothing():
    text = text_of(NOT_FOUND_PAGE)
    assert "no privacy notice at this address" in text
    assert "tenant" not in text.lower() and "dataset" not in text.lower()


def test_every_capability_has_its_words():
    # A capability added without them made every notice of its datasets a 500.
    from typing import get_args

    from shared.notice.content import CAPABILITIES
    from shared.registry.models import Capability

    assert set(CAPABILITIES) == set(get_args(Capability))
