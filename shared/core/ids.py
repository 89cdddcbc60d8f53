"""Identifiers: the strict pattern every path component must match, and record ids."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime

from shared.core.errors import BadRequest

ID_PATTERN = r"^[a-z0-9][a-z0-9-]{1,62}$"
_ID = re.compile(ID_PATTERN)
RECORD_ID_PATTERN = r"^[0-9]{8}T[0-9]{12}Z-[0-9a-f]{16}$"
_RECORD_ID = re.compile(RECORD_ID_PATTERN)


def is_valid_id(value: object) -> bool:
    # fullmatch on str only: re's $ would accept a trailing newline.
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def check_id(kind: str, value: object) -> str:
    """Validate a tenant, dataset, form or sequence id before it touches storage."""
    if not is_valid_id(value):
        raise BadRequest(
            "invalid_id",
            f"{kind} id must match {ID_PATTERN} (lower-case letters, digits and '-', 2 to 63 characters)",
        )
    return str(value)


def new_record_id(now: datetime) -> str:
    """Sortable by capture time (microseconds), unique by 64 random bits."""
    return now.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ") + "-" + secrets.token_hex(8)


def record_id_time(record_id: str) -> datetime:
    """The capture time an id begins with; ValueError when it is not a real time (month 45, say)."""
    return datetime.strptime(record_id.split("-", 1)[0], "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC)


def is_record_id(value: object) -> bool:
    if not isinstance(value, str) or _RECORD_ID.fullmatch(value) is None:
        return False
    try:
        record_id_time(value)
    except ValueError:
        return False
    return True
