"""Errors that map to a clear HTTP answer: {"error": code, "detail": text, ...}.

Details name the problem (a field, a limit), never a submitted value: values may be personal data.
"""

from __future__ import annotations

from typing import Any


class PackCloudError(Exception):
    status = 400

    def __init__(self, code: str, detail: str, **extra: Any) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.extra = extra
        self.headers: dict[str, str] = {}

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


class StorageUnavailable(PackCloudError):
    status = 503

    def __init__(self, detail: str = "storage is unavailable, retry later", retry_after: int = 5) -> None:
        super().__init__("storage_unavailable", detail)
        self.headers["Retry-After"] = str(retry_after)
