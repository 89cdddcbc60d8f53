"""The files in Dynamics 365: notes with a file (`annotations`) and e-mail attachments (`activitymimeattachments`).

Listing: by `versionnumber` (Dataverse's row version, which every change raises), after the job's cursor, in
pages (`Prefer: odata.maxpagesize`, then each `@odata.nextLink` as given). E-mail attachments already replaced by
a link, and notes whose file was removed (`isdocument` false), are left out by the query itself; a note whose text
already holds its link (copy mode) is listed once more after that change and skipped without being read.

The link: the note table takes no column of a customer's own (its `CanCreateAttributes` is false), so the link is
a line of the note's own text, `notetext` (LINK_LINE and the URL), added under what is there.

Reading: never the whole body in one answer. `InitializeAnnotationBlocksDownload` (or
`InitializeAttachmentBlocksDownload`) gives a continuation token and the size, and `DownloadBlock` answers one
range of the file, base64 in JSON: the mover reads the ranges Graph asks for, a few MiB at a time.

Writing back: `PATCH` with `If-Match` on the row's ETag from the listing, so a file that someone changed after it
was read is never cleared, and a deleted row is never created again (a PATCH without If-Match would upsert it).

Throttling: a 429 is waited out for its Retry-After when that is short (MAX_WAIT_S), else the tenant's run stops
with Throttled and the mover pauses that tenant alone. Nothing here logs: a file name only passes through.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote
from uuid import UUID

import requests

from shared.attachments.config import LOGICAL_NAME, AttachmentJob, Source
from shared.dataverse.client import DataverseClient, Throttled, Transient

PAGE_SIZE = 100
BLOCK_BYTES = 4 * 1024 * 1024  # DownloadBlock answers at most this much at once
MAX_WAIT_S = 10.0
MAX_ATTEMPTS = 5
BACKOFF_S = (1.0, 2.0)
DEFAULT_RETRY_AFTER_S = 5.0
LINK_MIME = "application/internet-shortcut"
LINK_LINE = "PackCloud SharePoint copy: "
NOTE_TEXT_MAX = 100_000  # the note text's maximum length in Dataverse
JSON_HEADERS = {"Accept": "application/json", "OData-Version": "4.0", "OData-MaxVersion": "4.0"}
# What each source is called in the Web API.
ENTITY = {
    "notes": ("annotations", "annotationid", "annotation"),
    "email": (
        "activitymimeattachments",
        "activitymimeattachmentid",
        "activitymimeattachment",
    ),
}
INITIALIZE = {"notes": "InitializeAnnotationBlocksDownload", "email": "InitializeAttachmentBlocksDownload"}
SELECT = "filename,filesize,objecttypecode,_objectid_value,versionnumber"


@dataclass(frozen=True)
class Attachment:
    source: Source
    id: str  # a GUID, checked
    table: str  # the logical name of the record's table (`email` for e-mail attachments)
    record_id: str  # the GUID of the record (the note's or the attachment's e-mail)
    size: int
    version: int
    etag: str = field(repr=False)
    file_name: str = field(repr=False)  # personal data, possibly: used for the SharePoint name, never kept
    note_text: str = field(default="", repr=False)  # the note's text, to add the link under; never kept

    @property
    def linked(self) -> bool:
        """A note whose text already holds its SharePoint link (copy mode): moved by an earlier run."""
        return LINK_LINE in self.note_text


@dataclass(frozen=True)
class OpenFile:
    token: str = field(repr=False)
    size: int


class Gone(Exception):
    """The row was deleted, or changed since it was listed: nothing is written to it."""


class Refused(Exception):
    """Dynamics 365 refused to record the link (a 4xx other than 404 and 412): the file is listed as refused."""

    def __init__(self, status: int) -> None:
        super().__init__(f"dynamics_{status}")
        self.code = f"dynamics_{status}"


def _guid(value: object) -> str | None:
    try:
        return str(UUID(str(value)))
    except ValueError:
        return None


def _attachment(source: Source, row: dict[str, Any]) -> Attachment | None:
    """A listed row, when its ids are GUIDs and its numbers numbers (anything else is skipped, never used in a
    path or a name)."""
    key = ENTITY[source][1]
    attachment_id, record_id = _guid(row.get(key)), _guid(row.get("_objectid_value"))
    table = row.get("objecttypecode")
    size, version = row.get("filesize"), row.get("versionnumber")
    if (
        attachment_id is None
        or record_id is None
        or not isinstance(table, str)
        or not re.fullmatch(LOGICAL_NAME, table)
    ):
        return None
    if not isinstance(size, int) or not isinstance(version, int) or size < 0:
        return None
    name, text = row.get("filename"), row.get("notetext")
    return Attachment(
        source=source,
        id=attachment_id,
        table=table.lower(),
        record_id=record_id,
        size=size,
        version=version,
        etag=str(row.get("@odata.etag") or "*"),
        file_name=name if isinstance(name, str) else "",
        note_text=text if isinstance(text, str) else "",
    )


def list_query(job: AttachmentJob, source: Source, after: int) -> str:
    """The listing's path and query: every value in it comes from the validated job, or is a number."""
    entity_set, key, _ = ENTITY[source]
    if source == "notes":
        tables = " or ".join(f"objecttypecode eq '{table}'" for table in job.note_tables)
        where = f"isdocument eq true and ({tables}) and versionnumber gt {after}"
        select = f"{key},{SELECT},notetext"
    else:
        where = f"objecttypecode eq 'email' and mimetype ne '{LINK_MIME}' and versionnumber gt {after}"
        select = f"{key},{SELECT}"
    params = {"$select": select, "$filter": where, "$orderby": "versionnumber asc"}
    return entity_set + "?" + "&".join(f"{name}={quote(value, safe=',()=')}" for name, value in params.items())


def note_with_link(text: str, web_url: str) -> str:
    """The note's text with the link's line under it; the text is shortened (never the link) to fit the column."""
    line = LINK_LINE + web_url
    if line in text:
        return text  # recorded by an earlier run (copy mode), before the job turned to link mode
    room = NOTE_TEXT_MAX - len(line) - 1
    kept = text[:room].rstrip() if room > 0 else ""
    return f"{kept}\n{line}" if kept else line


def shortcut(web_url: str) -> bytes:
    """An Internet shortcut (.url) to the SharePoint copy: what an e-mail attachment becomes in link mode."""
    return f"[InternetShortcut]\r\nURL={web_url}\r\n".encode()


class DataverseFiles:
    """One organisation's attachments, through one target's Web API client."""

    def __init__(
        self,
        client: DataverseClient,
        *,
        page_size: int = PAGE_SIZE,
        max_wait_s: float = MAX_WAIT_S,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._page_size = page_size
        self._max_wait_s = max_wait_s
        self._sleep = sleep

    # -- listing ----------------------------------------------------------------------------

    def pages(self, job: AttachmentJob, source: Source, after: int) -> Iterator[list[Attachment]]:
        link: str | None = list_query(job, source, after)
        headers = {**JSON_HEADERS, "Prefer": f"odata.maxpagesize={self._page_size}"}
        while link is not None:
            body = self._json("GET", link, headers)
            rows = body.get("value")
            if not isinstance(rows, list):
                raise Transient("answer_unreadable")
            yield [found for row in rows if isinstance(row, dict) and (found := _attachment(source, row))]
            next_link = body.get("@odata.nextLink")
            link = next_link if isinstance(next_link, str) else None

    def get(self, source: Source, attachment_id: str) -> Attachment | None:
        """One attachment by id (a retry on demand), or None when it is gone."""
        entity_set, key, _ = ENTITY[source]
        select = f"{key},{SELECT},notetext" if source == "notes" else f"{key},{SELECT}"
        response = self._call("GET", f"{entity_set}({attachment_id})?$select={select}", JSON_HEADERS)
        if response.status_code == 404:
            return None
        return _attachment(source, self._read(response))

    # -- reading ----------------------------------------------------------------------------

    def open(self, attachment: Attachment) -> OpenFile:
        _, key, entity = ENTITY[attachment.source]
        target = {key: attachment.id, "@odata.type": f"Microsoft.Dynamics.CRM.{entity}"}
        body = self._json("POST", INITIALIZE[attachment.source], JSON_HEADERS, {"Target": target})
        token, size = body.get("FileContinuationToken"), body.get("FileSizeInBytes")
        if not isinstance(token, str) or not isinstance(size, int) or size < 0:
            raise Transient("answer_unreadable")
        return OpenFile(token, size)

    def read(self, opened: OpenFile, offset: int, length: int) -> bytes:
        """Bytes [offset, offset + length) of the file, in DownloadBlock ranges of at most BLOCK_BYTES."""
        parts = []
        end = min(opened.size, offset + length)
        while offset < end:
            block = min(BLOCK_BYTES, end - offset)
            body = self._json(
                "POST",
                "DownloadBlock",
                JSON_HEADERS,
                {"Offset": offset, "BlockLength": block, "FileContinuationToken": opened.token},
            )
            data = body.get("Data")
            if not isinstance(data, str):
                raise Transient("answer_unreadable")
            chunk = base64.b64decode(data)
            if len(chunk) != block:
                raise Transient("short_block")
            parts.append(chunk)
            offset += block
        return parts[0] if len(parts) == 1 else b"".join(parts)

    # -- writing back -----------------------------------------------------------------------

    def record_link(self, job: AttachmentJob, attachment: Attachment, web_url: str) -> bool:
        """Record the SharePoint link and, in link mode, remove the file from Dynamics 365: one PATCH, made only
        after the copy was verified. False when there is nothing to write (an e-mail attachment kept as it is)."""
        entity_set, _, _ = ENTITY[attachment.source]
        values: dict[str, Any]
        if attachment.source == "notes":
            values = {"notetext": note_with_link(attachment.note_text, web_url)}
            if job.mode == "link":
                values.update({"documentbody": None, "isdocument": False})
        elif job.mode == "link":
            values = {
                "body": base64.b64encode(shortcut(web_url)).decode(),
                "mimetype": LINK_MIME,
                "filename": (attachment.file_name or attachment.id)[:250] + ".url",
            }
        else:
            return False  # the attachment table has no column for a link: the SharePoint name carries the id
        headers = {**JSON_HEADERS, "Content-Type": "application/json", "If-Match": attachment.etag}
        response = self._call("PATCH", f"{entity_set}({attachment.id})", headers, values)
        if response.status_code in (404, 412):
            raise Gone()
        if 400 <= response.status_code < 500:
            raise Refused(response.status_code)
        if response.status_code not in (200, 204):
            raise Transient(f"dataverse_{response.status_code}")
        return True

    # -- plumbing ---------------------------------------------------------------------------

    def _json(self, method: str, path: str, headers: dict[str, str], body: Any = None) -> dict[str, Any]:
        response = self._call(method, path, headers, body)
        if response.status_code == 404:
            raise Gone()
        return self._read(response)

    @staticmethod
    def _read(response: requests.Response) -> dict[str, Any]:
        if response.status_code != 200:
            raise Transient(f"dataverse_{response.status_code}")
        try:
            body = response.json()
        except ValueError:
            raise Transient("answer_unreadable") from None
        if not isinstance(body, dict):
            raise Transient("answer_unreadable")
        return body

    def _call(self, method: str, path: str, headers: dict[str, str], body: Any = None) -> requests.Response:
        """The request, with this tenant's 429s waited out when short and 5xx retried twice."""
        data = None if body is None else json.dumps(body).encode()
        if data is not None:
            headers = {**headers, "Content-Type": "application/json"}
        failures = 0
        for _ in range(MAX_ATTEMPTS):
            response = self._client.request(method, path, headers, data)
            if response.status_code == 429:
                wait = _retry_after(response)
                if wait > self._max_wait_s:
                    raise Throttled(wait)
                self._sleep(wait)
                continue
            if response.status_code >= 500 and failures < len(BACKOFF_S):
                self._sleep(BACKOFF_S[failures])
                failures += 1
                continue
            return response
        raise Throttled(DEFAULT_RETRY_AFTER_S)


def _retry_after(response: requests.Response) -> float:
    raw = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(raw)) if raw.isascii() else DEFAULT_RETRY_AFTER_S
    except ValueError:
        return DEFAULT_RETRY_AFTER_S
