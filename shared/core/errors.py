"""Errors that map to a clear HTTP answer: {"error": code, "detail": text, ...}.

Details name the problem (a field, a limit), never a submitted value: values may be personal data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# The detail of a 422 names this many failing fields at most; `errors` in the body holds every one.
SUMMARISED_PROBLEMS = 5


class PackCloudError(Exception):
    status = 400

    def __init__(self, code: str, detail: str, *, retry_after: int | None = None, **extra: Any) -> None:
        """`retry_after`: seconds after which a retry may succeed, sent as the Retry-After header."""
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.extra = extra
        self.retry_after = retry_after
        self.headers: dict[str, str] = {} if retry_after is None else {"Retry-After": str(retry_after)}

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "detail": self.detail, **self.extra}


class BadRequest(PackCloudError):
    status = 400


class Unauthorized(PackCloudError):
    status = 401


class Forbidden(PackCloudError):
    status = 403


class NotFound(PackCloudError):
    status = 404


class Conflict(PackCloudError):
    status = 409


class PayloadTooLarge(PackCloudError):
    status = 413


class UnsupportedMediaType(PackCloudError):
    status = 415


class Misdirected(PackCloudError):
    """The tenant is homed in another region: nothing is stored here (data residency)."""

    status = 421


class Unprocessable(PackCloudError):
    status = 422


class TooManyRequests(PackCloudError):
    status = 429


class UpstreamUnavailable(PackCloudError):
    """A third-party service the customer chose (Mailchimp, ...) is overloaded or down: retry the whole call."""

    status = 503


class StorageUnavailable(PackCloudError):
    status = 503

    def __init__(self, detail: str = "storage is unavailable, retry later", retry_after: int = 5) -> None:
        super().__init__("storage_unavailable", detail, retry_after=retry_after)


def field_problems(
    code: str, lead: str | None, problems: Sequence[Mapping[str, str]], *, between: str = ": "
) -> Unprocessable:
    """The one 422 for fields that do not fit: every problem (`{"field", "reason"}`) in `errors`, the first few
    in the detail as `lead: field<between>reason; ...`. `between` is " " where the reasons read on from the
    field's name ("email is required"), ": " where they stand alone (pydantic's "Field required")."""
    summary = "; ".join(f"{p['field']}{between}{p['reason']}" for p in problems[:SUMMARISED_PROBLEMS])
    return Unprocessable(code, summary if lead is None else f"{lead}: {summary}", errors=list(problems))
