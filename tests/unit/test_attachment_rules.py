"""PowerAttachment's pure rules: the job's validation (each bad field named), folder patterns, SharePoint item
names, the listing queries and the hashing of ranges as Graph asks for them."""

from __future__ import annotations

import base64
import os

import pytest
from pydantic import ValidationError

from shared.attachments.config import AttachmentJob, AttachmentJobIn, check_folder
from shared.attachments.mover import _Hasher, item_name, item_path
from shared.attachments.quickxor import quick_xor_hash
from shared.attachments.sources import LINK_LINE, Attachment, list_query, note_with_link, shortcut

SITE = "contoso.sharepoint.com,2c712604-1370-44e7-a1f5-426573fda80a,2d2244c3-251a-49ea-93a8-39e1c3a060fe"
JOB = {
    "sources": ["notes", "email"],
    "note_tables": ["account", "incident"],
    "site_id": SITE,
    "drive_id": "b!AbCdEfGhIjKlMnOp_-",
    "mode": "link",
}


def attachment(name: str = "Contract Ø Müller.pdf", source: str = "notes") -> Attachment:
    return Attachment(
        source=source,  # type: ignore[arg-type]
        id="0f8fad5b-d9cb-469f-a165-70867728950e",
        table="account",
        record_id="7c9e6679-7425-40de-944b-e07fc1f90ae7",
        size=10,
        version=1001,
        etag='W/"1001"',
        file_name=name,
    )


def problems(body: dict) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        AttachmentJobIn.model_validate(body)
    return {".".join(str(p) for p in e["loc"]): e["msg"] for e in caught.value.errors()}


def test_a_whole_job_is_accepted_with_its_defaults():
    job = AttachmentJobIn.model_validate(JOB)
    assert job.folder == "{table}/{record_id}"
    assert job.max_file_bytes == 131_072 * 1024


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"sources": []}, "sources"),
        ({"sources": ["notes", "notes"]}, "sources"),
        ({"sources": ["sms"]}, "sources.0"),
        ({"note_tables": []}, "note_tables"),
        ({"note_tables": ["Account"]}, "note_tables"),
        ({"note_tables": ["account", "account"]}, "note_tables"),
        ({"site_id": "contoso.sharepoint.com"}, "site_id"),
        ({"drive_id": "b!../../x"}, "drive_id"),
        ({"folder": "{table}/../{record_id}"}, "folder"),
        ({"folder": ".."}, "folder"),
        ({"folder": "{table}/{owner}"}, "folder"),
        ({"folder": "a//b"}, "folder"),
        ({"folder": "a:b"}, "folder"),
        ({"folder": "/".join(["a"] * 9)}, "folder"),
        ({"folder": "x" * 201}, "folder"),
        ({"mode": "move"}, "mode"),
        ({"link_column": "pc_sharepointurl"}, "link_column"),
        ({"max_file_bytes": 0}, "max_file_bytes"),
        ({"max_file_bytes": 131_072 * 1024 + 1}, "max_file_bytes"),
        ({"client_secret": "s3cret"}, "client_secret"),
    ],
)
def test_each_bad_field_is_named(change, field):
    assert field in problems({**JOB, **change})


def test_tables_only_go_with_notes():
    email = {**JOB, "sources": ["email"], "note_tables": []}
    assert AttachmentJobIn.model_validate(email).note_tables == []
    assert "note_tables" in problems({**email, "note_tables": ["account"]})


def test_the_stored_job_has_no_secret_field():
    assert not any("secret" in name or "certificate" in name for name in AttachmentJob.model_fields)


def test_folder_patterns_are_normalised_and_bounded():
    assert check_folder("/{source}/{table}/{record_id}/") == "{source}/{table}/{record_id}"
    assert check_folder("CRM files/{table}") == "CRM files/{table}"
    for bad in ("a/./b", " a", "a.", "{table}..x", "a\\b"):
        with pytest.raises(ValueError, match=r"folder|name|letters"):
            check_folder(bad)


def test_item_names_carry_the_id_and_a_name_sharepoint_takes():
    assert item_name(attachment()) == "0f8fad5b-d9cb-469f-a165-70867728950e Contract Ø Müller.pdf"
    assert item_name(attachment('a/b:c*?"<>|#%.txt')).endswith(" a_b_c________.txt")
    assert item_name(attachment(" .. ")) == "0f8fad5b-d9cb-469f-a165-70867728950e"
    assert len(item_name(attachment("x" * 1000))) <= 37 + 200
    job = AttachmentJob.model_validate(
        {
            **JOB,
            "folder": "{source}/{table}/{record_id}",
            "tenant": "t1",
            "tenant_generation": "g",
            "version": "0" * 16,
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z",
        }
    )
    assert item_path(job, attachment()) == (
        "notes/account/7c9e6679-7425-40de-944b-e07fc1f90ae7/0f8fad5b-d9cb-469f-a165-70867728950e Contract Ø Müller.pdf"
    )


def test_item_paths_stay_within_sharepoints_limit_by_cutting_the_name_never_the_id():
    deep = "/".join(["{record_id}"] * 8)  # 8 x 36 characters once filled in
    job = AttachmentJob.model_validate(
        {
            **JOB,
            "folder": deep,
            "tenant": "t1",
            "tenant_generation": "g",
            "version": "0" * 16,
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z",
        }
    )
    path = item_path(job, attachment("y" * 300))
    assert len(path) == 400 and path.rsplit("/", 1)[-1].startswith("0f8fad5b-d9cb-469f-a165-70867728950e y")


def test_listing_queries_leave_out_what_is_already_linked():
    job = AttachmentJob.model_validate(
        {
            **JOB,
            "tenant": "t1",
            "tenant_generation": "g",
            "version": "0" * 16,
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z",
        }
    )
    notes = list_query(job, "notes", 42)
    assert notes.startswith("annotations?$select=annotationid,")
    assert "isdocument%20eq%20true" in notes and "versionnumber%20gt%2042" in notes and ",notetext&" in notes
    assert "objecttypecode%20eq%20%27account%27%20or%20objecttypecode%20eq%20%27incident%27" in notes
    email = list_query(job, "email", 7)
    assert "mimetype%20ne%20%27application%2Finternet-shortcut%27" in email


def test_the_link_goes_under_the_note_text_and_always_fits():
    url = "https://contoso.sharepoint.com/sites/crm/x.pdf"
    assert note_with_link("", url) == LINK_LINE + url
    assert note_with_link("Call back on Monday.\n", url) == f"Call back on Monday.\n{LINK_LINE}{url}"
    long = note_with_link("x" * 100_000, url)
    assert len(long) == 100_000 and long.endswith(LINK_LINE + url)
    assert attachment().linked is False
    assert Attachment(**{**attachment().__dict__, "note_text": long}).linked is True


def test_an_email_attachment_becomes_an_internet_shortcut():
    assert (
        shortcut("https://contoso.sharepoint.com/x")
        == b"[InternetShortcut]\r\nURL=https://contoso.sharepoint.com/x\r\n"
    )


def test_the_source_hash_counts_each_byte_once_whatever_ranges_graph_asks_for():
    data = os.urandom(3 * 327_680 + 17)
    hasher = _Hasher(len(data))
    unit = 327_680
    hasher.feed(0, data[:unit])
    hasher.feed(unit, data[unit : 2 * unit])
    hasher.feed(unit, data[unit : 2 * unit])  # a chunk sent again after a failure
    hasher.feed(unit // 2, data[unit // 2 : unit * 2 + 5])  # overlapping what was hashed
    reads = []

    def read(offset: int, length: int) -> bytes:
        reads.append((offset, length))
        return data[offset : offset + length]

    assert hasher.finish(read, unit) == quick_xor_hash([data])
    assert reads[0] == (2 * unit + 5, unit)  # only what was not hashed is read again


def test_a_file_graph_already_had_is_hashed_from_the_source_alone():
    data = os.urandom(1000)
    hasher = _Hasher(len(data))
    assert hasher.finish(lambda o, n: data[o : o + n], 300) == quick_xor_hash([data])
    assert base64.b64decode(quick_xor_hash([data]))  # base64, as Graph writes it
