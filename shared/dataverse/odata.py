"""The Dataverse Web API's `$batch` format (OData 4.0 multipart/mixed), built and read without the network.

A batch carries upserts by alternate key: `PATCH {table}({key}='{record id}')` with the row's columns as JSON.
Dataverse creates the row when no row has that key and updates it otherwise, so sending a record twice (a run
killed after Dataverse stored it, before PackCloud deleted it) never makes a second row. The answer to each
operation is `204 No Content` with `OData-EntityId: .../{table}({row id})`.

Two shapes: `atomic`, every upsert in one change set (Dataverse commits all or none, and a refused operation
fails the whole batch with its own answer), and `isolated`, one change set per upsert with
`Prefer: odata.continue-on-error`, where each operation gets its own answer. Reading is bounded: the answer's
size and its number of parts are capped, and an answer that does not parse is a failure of the whole batch.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

API_PATH = "api/data/v9.2/"
MAX_ANSWER_BYTES = 32 * 1024 * 1024
MAX_MESSAGE_CHARS = 500
BATCH_HEADERS = {"OData-MaxVersion": "4.0", "OData-Version": "4.0", "Accept": "application/json"}
CONTINUE_ON_ERROR = "odata.continue-on-error"

_BOUNDARY = re.compile(r'boundary="?([^";\s]+)"?', re.IGNORECASE)
_STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([0-9]{3})")
_GUID = re.compile(r"\(([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})\)\s*$")
_QUOTED = re.compile(r"(['\"])(.*?)\1")
_SHORT_NUMBER = re.compile(r"[0-9]{1,6}")
_NOT_PRINTABLE = re.compile(r"[^ -~]+")
REMOVED = "[removed]"


@dataclass(frozen=True)
class Upsert:
    """One record's row: the record id (the alternate key's value) and the columns to set."""

    record_id: str
    row: dict[str, Any]


@dataclass(frozen=True)
class OpResult:
    """The answer to one operation of a batch. `content_id` is its 1-based position (None: not said)."""

    content_id: int | None
    status: int
    entity_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None

    @property
    def row_id(self) -> str | None:
        """The row's GUID, from `OData-EntityId: ...table(guid)`."""
        found = _GUID.search(self.entity_id or "")
        return found.group(1).lower() if found else None


@dataclass(frozen=True)
class BatchAnswer:
    """The answer to a whole `$batch`: its status, the operations answered, and its own error (when not a
    multipart answer)."""

    status: int
    results: list[OpResult] = field(default_factory=list)
    error_code: str | None = None
    error_message: str | None = None
    retry_after: float | None = None
    dop_hint: int | None = None


class AnswerUnreadable(ValueError):
    """The answer is not a batch answer PackCloud can read; the batch counts as failed, nothing as delivered."""


def upsert_path(table: str, key: str, record_id: str) -> str:
    """`{table}({key}='{id}')`: names are checked when the mapping is declared; quotes in the value are doubled
    as OData requires (record ids have none)."""
    return f"{table}({key}='{record_id.replace(chr(39), chr(39) * 2)}')"


def build_batch(
    organization_url: str, table: str, key: str, ops: Sequence[Upsert], *, isolated: bool
) -> tuple[dict[str, str], bytes]:
    """The headers and body of one `$batch` request. Content-IDs are the operations' 1-based positions."""
    batch = f"batch_{uuid.uuid4().hex}"
    base = organization_url.rstrip("/") + "/" + API_PATH
    parts = [
        _operation(base + upsert_path(table, key, op.record_id), op.row, number) for number, op in enumerate(ops, 1)
    ]
    groups = [[part] for part in parts] if isolated else [parts]
    body = b"".join(_change_set(batch, group) for group in groups) + f"--{batch}--\r\n".encode()
    headers = {**BATCH_HEADERS, "Content-Type": f'multipart/mixed; boundary="{batch}"'}
    if isolated:
        headers["Prefer"] = CONTINUE_ON_ERROR
    return headers, body


def _operation(url: str, row: dict[str, Any], content_id: int) -> bytes:
    # JSON escapes every line break, so a value can never end the part or forge a boundary.
    payload = json.dumps(row, separators=(",", ":"), ensure_ascii=False)
    return (
        "Content-Type: application/http\r\n"
        "Content-Transfer-Encoding: binary\r\n"
        f"Content-ID: {content_id}\r\n\r\n"
        f"PATCH {url} HTTP/1.1\r\n"
        "Content-Type: application/json\r\n\r\n"
        f"{payload}\r\n"
    ).encode()


def _change_set(batch: str, parts: list[bytes]) -> bytes:
    change_set = f"changeset_{uuid.uuid4().hex}"
    opening = f"--{batch}\r\nContent-Type: multipart/mixed; boundary={change_set}\r\n\r\n".encode()
    inner = b"".join(f"--{change_set}\r\n".encode() + part for part in parts)
    return opening + inner + f"--{change_set}--\r\n".encode()


# ------------------------------------------------------------------------------------------------ answers


def read_answer(status: int, headers: dict[str, str], body: bytes, operations: int) -> BatchAnswer:
    """A `$batch` answer: every operation's result found in it, or the batch's own error. AnswerUnreadable
    when a multipart answer does not parse or holds more parts than the batch had operations."""
    lowered = {name.lower(): value for name, value in headers.items()}
    retry_after = parse_retry_after(lowered.get("retry-after"))
    dop_hint = _small_int(lowered.get("x-ms-dop-hint"))
    if len(body) > MAX_ANSWER_BYTES:
        raise AnswerUnreadable("the answer is larger than any batch answer")
    content_type = lowered.get("content-type", "")
    if content_type.lower().startswith("multipart/"):
        results: list[OpResult] = []
        _read_multipart(body, _boundary(content_type), results, operations, depth=0)
        return BatchAnswer(status, results, retry_after=retry_after, dop_hint=dop_hint)
    code, message = error_of(body)
    return BatchAnswer(status, [], code, message, retry_after, dop_hint)


def _boundary(content_type: str) -> str:
    found = _BOUNDARY.search(content_type)
    if found is None:
        raise AnswerUnreadable("a multipart answer without a boundary")
    return found.group(1)


def _read_multipart(body: bytes, boundary: str, results: list[OpResult], operations: int, depth: int) -> None:
    if depth > 1:
        raise AnswerUnreadable("change sets nest one level at most")
    for part in _parts(body, boundary):
        head, content = _split_head(part)
        content_type = head.get("content-type", "")
        if content_type.lower().startswith("multipart/"):
            _read_multipart(content, _boundary(content_type), results, operations, depth + 1)
            continue
        results.append(_read_response(content, _small_int(head.get("content-id"))))
        if len(results) > operations:
            raise AnswerUnreadable("more answers than operations")


def _parts(body: bytes, boundary: str) -> list[bytes]:
    delimiter = b"--" + boundary.encode("ascii", "replace")
    pieces = body.split(delimiter)
    if len(pieces) < 2:
        raise AnswerUnreadable("no part in a multipart answer")
    parts: list[bytes] = []
    for piece in pieces[1:]:
        if piece.startswith(b"--"):
            return parts
        parts.append(_strip_line_break(piece))
    raise AnswerUnreadable("a multipart answer without its closing boundary")


def _strip_line_break(piece: bytes) -> bytes:
    """A part sits between the line break that ends its delimiter line and the one before the next delimiter."""
    if piece.startswith(b"\r\n"):
        piece = piece[2:]
    elif piece.startswith(b"\n"):
        piece = piece[1:]
    if piece.endswith(b"\r\n"):
        return piece[:-2]
    return piece[:-1] if piece.endswith(b"\n") else piece


def _split_head(part: bytes) -> tuple[dict[str, str], bytes]:
    for separator in (b"\r\n\r\n", b"\n\n"):
        head, found, rest = part.partition(separator)
        if found:
            return _headers(head), rest
    return _headers(part), b""


def _headers(head: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in head.decode("latin-1").splitlines():
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    return headers


def _read_response(content: bytes, content_id: int | None) -> OpResult:
    """An `application/http` part: `HTTP/1.1 204 No Content`, its headers, its body."""
    status_line, _, rest = content.partition(b"\n")
    found = _STATUS_LINE.match(status_line.strip())
    if found is None:
        raise AnswerUnreadable("an answer part without an HTTP status line")
    headers, body = _split_head(rest)
    status = int(found.group(1))
    if 200 <= status < 300:
        return OpResult(content_id, status, entity_id=headers.get("odata-entityid") or headers.get("location"))
    code, message = error_of(body)
    return OpResult(content_id, status, error_code=code, error_message=message)


def error_of(body: bytes) -> tuple[str | None, str | None]:
    """The OData error's code and message, `{"error": {"code", "message"}}`; (None, None) for anything else."""
    try:
        error = json.loads(body[:MAX_ANSWER_BYTES])["error"]
        code, message = error.get("code"), error.get("message")
    except (ValueError, KeyError, TypeError, AttributeError):
        return None, None
    return (str(code)[:100] if code is not None else None), (str(message) if message is not None else None)


def _small_int(text: str | None) -> int | None:
    return int(text) if text is not None and text.strip().isascii() and text.strip().isdigit() else None


def parse_retry_after(text: str | None, now: datetime | None = None) -> float | None:
    """`Retry-After` as seconds: delta-seconds, or an HTTP date (RFC 9110); None when absent or unreadable."""
    if text is None:
        return None
    text = text.strip()
    if text.isascii() and text.isdigit():
        return float(min(int(text), 86_400))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    wait = when - (now or datetime.now(UTC))
    return max(0.0, min(wait, timedelta(days=1)).total_seconds())


# ------------------------------------------------------------------------------------------------ messages


def scrub_message(message: str | None, values: Iterable[object], names: Iterable[str]) -> str | None:
    """An OData error message with every value removed, fit to keep and show: a quoted segment stays only when it
    is one of `names` (the mapping's table and columns) or a short number that is no value sent; every sent value
    of three or more characters is removed wherever it appears; ASCII only, at most 500 characters.

    Dataverse quotes what it refused ("Cannot convert the literal 'Jane' to the expected type 'Edm.Int32'"), and
    such a message is kept with the record and shown to the tenant: it must hold no captured value."""
    if message is None:
        return None
    allowed = {name.lower() for name in names}
    sent = {_text(value) for value in values} - {""}

    def keep_or_remove(found: re.Match[str]) -> str:
        inner = found.group(2)
        kept = inner.lower() in allowed or (_SHORT_NUMBER.fullmatch(inner) is not None and inner not in sent)
        return found.group(0) if kept else f"{found.group(1)}{REMOVED}{found.group(1)}"

    text = _QUOTED.sub(keep_or_remove, message)
    for value in sorted((v for v in sent if len(v) >= 3), key=len, reverse=True):
        text = re.sub(re.escape(value), REMOVED, text, flags=re.IGNORECASE)
    text = " ".join(_NOT_PRINTABLE.sub(" ", text).split())
    return text[:MAX_MESSAGE_CHARS]


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def entity_names(table: str, columns: Iterable[str]) -> set[str]:
    """The names a Dataverse message may quote about this mapping: the entity set, its entity (`leads` is the set
    of the `lead` entity), the columns."""
    names = {table, *columns}
    if table.endswith("ies"):
        names.add(table[:-3] + "y")
    if table.endswith("es"):
        names.add(table[:-2])
    if table.endswith("s"):
        names.add(table[:-1])
    return names
