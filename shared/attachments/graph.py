"""Microsoft Graph for a SharePoint document library (a drive): check it, find an item by path, upload a file.

Direct HTTP over the `requests` pool the Dataverse client already uses, not `msgraph-sdk` (measured in the README's
Dependencies section: the SDK's import alone costs more cold start and memory than all PackCloud uses of Graph,
which are four request shapes). Tokens are the tenant's Entra application's (the same one as for Dataverse, with
the `Sites.Selected` permission on the chosen site), for the scope `{Graph origin}/.default`.

Uploads: a file of at most 4 MiB (and at most one chunk) in one `PUT …:/content`; a larger one through an upload
session, in chunks that are multiples of 320 KiB, each read from the caller's `content(offset, length)` only when
it is sent, so that memory holds one chunk whatever the file's size. Both fail on an existing name
(`conflictBehavior=fail`): the mover names items after the attachment's id, so a 409 means an earlier run already
uploaded it, and the existing item is returned for the caller to verify (size and QuickXorHash). The pre-
authenticated upload URL gets no Authorization header (Graph's documentation: it may answer 401 to one).

429 and 503 are waited out for their `Retry-After`, up to `max_wait_s` in all for one call; a longer wait is the
caller's to schedule (GraphThrottled), so that one tenant's throttling holds no worker. Errors carry Graph's error
code and HTTP status, never a path, a file name or an answer's message; logs say codes and counts only.
"""

from __future__ import annotations

import email.utils
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

from shared.attachments.quickxor import QuickXorHash, quick_xor_hash
from shared.core.urls import parse_web_url, service_base_url
from shared.dataverse.client import CONNECT_TIMEOUT_S, AppCredentials, TokenSource

__all__ = [
    "DriveItem",
    "GraphClient",
    "GraphRefused",
    "GraphThrottled",
    "QuickXorHash",
    "graph_tokens",
    "quick_xor_hash",
]

log = logging.getLogger("packcloud.attachments.graph")

SIMPLE_UPLOAD_MAX = 4 * 1024 * 1024  # Graph's limit for a `PUT …:/content`
FRAGMENT_UNIT = 320 * 1024  # upload session fragments are multiples of this (Graph's documentation)
MAX_FRAGMENT = 60 * 1024 * 1024  # and at most this
READ_TIMEOUT_S = 120  # a 60 MiB fragment on a slow link
MAX_SESSIONS = 3  # upload sessions one upload may start (the first and two after expiries)
MAX_UNANSWERED = 3  # requests in a row that got no answer (or a 5xx) before the upload gives up for now
DEFAULT_WAIT_S = 1.0  # a 429/503 without Retry-After: doubled at each one
MAX_RETRY_AFTER_S = 3600.0  # a longer (or unreadable) Retry-After is read as an hour
MAX_PATH_CHARS = 400  # SharePoint's limit on a decoded path
# Site ids are `host,site guid,web guid`; drive ids are base64url-like with `!`; both get percent-encoded anyway.
ID_PATTERN = re.compile(r"[A-Za-z0-9!,._-]{1,300}")
ERROR_CODE = re.compile(r"[A-Za-z][A-Za-z0-9_.]{0,63}")
# Characters SharePoint refuses in a name, and control characters: a path with any of them is the caller's bug.
_REFUSED_IN_NAME = re.compile(r'["*:<>?\\|\x00-\x1f\x7f]')
_RANGE = re.compile(r"([0-9]{1,15})-([0-9]{0,15})")

Content = Callable[[int, int], bytes]


@dataclass(frozen=True)
class DriveItem:
    id: str
    web_url: str
    size: int
    # base64, as Graph's file.hashes.quickXorHash; None for a folder, or while Graph has not computed it yet
    quick_xor_hash: str | None


class GraphThrottled(Exception):
    """429/503 for longer than the call may wait (`max_wait_s`, for all its waits together): try again after
    `retry_after` seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__("throttled")
        self.retry_after = retry_after


class GraphRefused(Exception):
    """Any other refusal: Graph's HTTP status and error code (status 0: no answer at all, such as a timeout).
    `transient` refusals (no answer, 5xx) may succeed on a later run; the others need a change of configuration,
    permission or file."""

    def __init__(self, status: int, code: str) -> None:
        super().__init__(f"{status} {code}")
        self.status = status
        self.code = code

    @property
    def transient(self) -> bool:
        return self.status == 0 or self.status >= 500


def graph_tokens(credentials: AppCredentials, graph_url: str, session: requests.Session) -> TokenSource:
    """The tenant application's tokens for Microsoft Graph: the scope is the Graph URL's origin + `/.default`
    (`https://graph.microsoft.com/.default`, or a national cloud's own)."""
    return TokenSource(credentials, parse_web_url(graph_url).origin, session)


@dataclass
class _Budget:
    """How long one call may still wait for Retry-After, and how many unanswered requests it has had."""

    left_s: float
    unanswered: int = 0
    throttled: int = 0


class GraphClient:
    """One tenant's Microsoft Graph, with its application's tokens."""

    def __init__(
        self,
        session: requests.Session,
        base_url: str,
        tokens: TokenSource,
        *,
        chunk_size: int = 5 * 1024 * 1024,
        max_wait_s: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if chunk_size <= 0 or chunk_size % FRAGMENT_UNIT or chunk_size > MAX_FRAGMENT:
            raise ValueError("chunk_size must be a multiple of 320 KiB, at most 60 MiB")
        self._session = session
        self._base = service_base_url(base_url).rstrip("/")
        self._tokens = tokens
        self._chunk_size = chunk_size
        self._max_wait_s = max_wait_s
        self._sleep = sleep
        self.requests = 0  # requests sent (Graph and upload URLs): tests and benchmarks count them

    # -- the three operations ---------------------------------------------------------------------

    def check_drive(self, site_id: str, drive_id: str) -> None:
        """The drive is a document library of the site that this application may reach; GraphRefused otherwise
        (403 accessDenied: no `Sites.Selected` grant on the site; 404 itemNotFound: no such site or drive)."""
        url = f"{self._base}/sites/{_id(site_id)}/drives/{_id(drive_id)}?$select=id"
        response = self._call("GET", url, _Budget(self._max_wait_s), retry_unanswered=True)
        if response.status_code != 200:
            raise _refusal(response)

    def find_item(self, drive_id: str, path: str) -> DriveItem | None:
        """The item at `path` (folders/name, relative to the drive's root), or None when there is none."""
        return self._find(drive_id, path, _Budget(self._max_wait_s))

    def upload(self, drive_id: str, path: str, content: Content, size: int) -> DriveItem:
        """Upload `size` bytes, read by `content(offset, length)` in ranges of at most chunk_size, to a new item at
        `path`. An item already there is returned as it is (the caller compares its size and hash)."""
        if size < 0:
            raise ValueError("size must not be negative")
        item_url = f"{self._base}/drives/{_id(drive_id)}/root:/{_path(path)}:"
        budget = _Budget(self._max_wait_s)
        if size <= min(SIMPLE_UPLOAD_MAX, self._chunk_size):
            return self._simple(drive_id, path, item_url, _read(content, 0, size), budget)
        for _ in range(MAX_SESSIONS):
            upload_url = self._start_session(item_url, budget)
            if upload_url is None:
                return self._existing(drive_id, path, budget)
            item = self._send_fragments(upload_url, content, size, budget)
            if item is not None:
                return item if item.id else self._existing(drive_id, path, budget)
            log.info("graph upload session expired: starting a new one")
        raise GraphRefused(404, "uploadSessionNotFound")

    # -- uploads ----------------------------------------------------------------------------------

    def _simple(self, drive_id: str, path: str, item_url: str, data: bytes, budget: _Budget) -> DriveItem:
        url = f"{item_url}/content?@microsoft.graph.conflictBehavior=fail"
        headers = {"Content-Type": "application/octet-stream"}
        response = self._call("PUT", url, budget, data=data, headers=headers, retry_unanswered=True)
        if response.status_code in (200, 201):
            return _drive_item(response)
        if response.status_code == 409:
            return self._existing(drive_id, path, budget)
        raise _refusal(response)

    def _start_session(self, item_url: str, budget: _Budget) -> str | None:
        """A new upload session's URL; None when the name is taken already."""
        body = json.dumps({"item": {"@microsoft.graph.conflictBehavior": "fail"}}).encode()
        headers = {"Content-Type": "application/json"}
        response = self._call(
            "POST", f"{item_url}/createUploadSession", budget, data=body, headers=headers, retry_unanswered=True
        )
        if response.status_code == 409:
            return None
        if response.status_code != 200:
            raise _refusal(response)
        upload_url = _json(response).get("uploadUrl")
        if not isinstance(upload_url, str):
            raise GraphRefused(response.status_code, "answer_unreadable")
        try:
            # File bytes go there: an unambiguous https URL (http only when Graph itself is on this machine).
            parsed = parse_web_url(upload_url)
        except ValueError:
            raise GraphRefused(response.status_code, "upload_url_refused") from None
        if parsed.scheme != "https" and not self._base.startswith("http://"):
            raise GraphRefused(response.status_code, "upload_url_refused")
        return upload_url

    def _send_fragments(self, upload_url: str, content: Content, size: int, budget: _Budget) -> DriveItem | None:
        """Send what the session misses until it completes: its item (an empty DriveItem when the name turned out to
        be taken); None when the session expired (404)."""
        offset, end = 0, size
        # Each fragment is sent once, unless the session asks for it again: a session that keeps asking is broken.
        for _ in range(2 * (-(-size // self._chunk_size)) + 2 * MAX_UNANSWERED):
            length = min(self._chunk_size, end - offset, size - offset)
            headers = {"Content-Range": f"bytes {offset}-{offset + length - 1}/{size}"}
            data = _read(content, offset, length)
            response = self._call("PUT", upload_url, budget, data=data, headers=headers, authorized=False)
            status = response.status_code
            if status in (200, 201):
                return _drive_item(response)
            if status == 202:
                offset, end = _next_range(_json(response), size)
                continue
            if status == 404:
                return None
            if status == 409:
                return DriveItem("", "", 0, None)
            if status == 416 or status == 0 or status >= 500:
                # The fragment may have arrived (or overlapped one that had): ask the session what it misses.
                status_answer = self._call("GET", upload_url, budget, authorized=False, retry_unanswered=True)
                if status_answer.status_code == 404:
                    return None
                if status_answer.status_code != 200:
                    raise _refusal(status_answer)
                offset, end = _next_range(_json(status_answer), size)
                continue
            raise _refusal(response)
        raise GraphRefused(202, "upload_not_progressing")

    def _existing(self, drive_id: str, path: str, budget: _Budget) -> DriveItem:
        item = self._find(drive_id, path, budget)
        if item is None:  # taken a moment ago and gone since: not for this call to guess
            raise GraphRefused(409, "nameAlreadyExists")
        return item

    def _find(self, drive_id: str, path: str, budget: _Budget) -> DriveItem | None:
        url = f"{self._base}/drives/{_id(drive_id)}/root:/{_path(path)}?$select=id,webUrl,size,file"
        response = self._call("GET", url, budget, retry_unanswered=True)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise _refusal(response)
        return _drive_item(response)

    # -- one request ------------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        url: str,
        budget: _Budget,
        *,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        authorized: bool = True,
        retry_unanswered: bool = False,
    ) -> requests.Response:
        """The answer to one request, after waiting out 429/503 within the budget and one fresh token after a 401.
        A request that got no answer is retried (when it may be: `retry_unanswered`) or answered as status 0."""
        token = self._tokens.token() if authorized else None
        refreshed = False
        while True:
            sent = dict(headers or {})
            if token is not None:
                sent["Authorization"] = f"Bearer {token}"
            self.requests += 1
            try:
                response = self._session.request(
                    method,
                    url,
                    data=data,
                    headers=sent,
                    timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S),
                    allow_redirects=False,  # the token goes to Graph's host and nowhere else
                )
            except requests.RequestException as error:
                budget.unanswered += 1
                code = "timeout" if isinstance(error, requests.Timeout) else "connection_failed"
                log.info("graph request unanswered: %s", code)
                if budget.unanswered >= MAX_UNANSWERED or DEFAULT_WAIT_S * budget.unanswered > budget.left_s:
                    raise GraphRefused(0, code) from None
                if retry_unanswered:
                    self._wait(budget, DEFAULT_WAIT_S * budget.unanswered)
                    continue
                return _unanswered()
            status = response.status_code
            if status in (429, 503):
                budget.throttled += 1
                wait = _retry_after(response, DEFAULT_WAIT_S * 2 ** (budget.throttled - 1))
                log.info("graph throttled: %d, waiting %.1f s", status, wait)
                self._wait(budget, wait)
                continue
            if status == 401 and token is not None and not refreshed:
                token, refreshed = self._tokens.fresh(refused=token), True
                continue
            if 300 <= status < 400:
                raise GraphRefused(status, "redirected")
            if status >= 500:
                budget.unanswered += 1
                if budget.unanswered >= MAX_UNANSWERED or DEFAULT_WAIT_S * budget.unanswered > budget.left_s:
                    raise _refusal(response)
                if retry_unanswered:
                    self._wait(budget, DEFAULT_WAIT_S * budget.unanswered)
                    continue
            return response

    def _wait(self, budget: _Budget, seconds: float) -> None:
        if seconds > budget.left_s:
            raise GraphThrottled(seconds)
        budget.left_s -= seconds
        self._sleep(seconds)


# ------------------------------------------------------------------------------------------------ helpers


def _id(value: str) -> str:
    if not ID_PATTERN.fullmatch(value):
        raise ValueError("a site or drive id has letters, digits and !,._- only")
    return quote(value, safe="!,")


def _path(path: str) -> str:
    """The path, each segment percent-encoded; ValueError (never quoting it) for one SharePoint would refuse."""
    segments = path.split("/")
    if not path or len(path) > MAX_PATH_CHARS:
        raise ValueError("a drive path has 1 to 400 characters")
    for segment in segments:
        if segment in ("", ".", "..") or segment != segment.strip() or _REFUSED_IN_NAME.search(segment):
            raise ValueError("a drive path has non-empty names without characters SharePoint refuses")
    return "/".join(quote(segment, safe="") for segment in segments)


def _read(content: Content, offset: int, length: int) -> bytes:
    data = content(offset, length) if length else b""
    if len(data) != length:
        raise ValueError("content returned fewer or more bytes than asked")
    return data


def _unanswered() -> requests.Response:
    response = requests.Response()
    response.status_code = 0
    return response


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        body = json.loads(response.content)
    except ValueError:
        raise GraphRefused(response.status_code, "answer_unreadable") from None
    if not isinstance(body, dict):
        raise GraphRefused(response.status_code, "answer_unreadable")
    return body


def _drive_item(response: requests.Response) -> DriveItem:
    body = _json(response)
    try:
        hashes = (body.get("file") or {}).get("hashes") or {}
        xor = hashes.get("quickXorHash")
        item = DriveItem(str(body["id"]), str(body.get("webUrl") or ""), int(body["size"]), xor)
    except (KeyError, TypeError, ValueError, AttributeError):
        raise GraphRefused(response.status_code, "answer_unreadable") from None
    if not item.id or (xor is not None and not isinstance(xor, str)):
        raise GraphRefused(response.status_code, "answer_unreadable")
    return item


def _next_range(body: dict[str, Any], size: int) -> tuple[int, int]:
    """The first range the session misses, as [start, end): Graph writes `start-end` (inclusive) or `start-`."""
    ranges = body.get("nextExpectedRanges")
    found = _RANGE.fullmatch(ranges[0]) if isinstance(ranges, list) and ranges and isinstance(ranges[0], str) else None
    if found is None:
        raise GraphRefused(202, "answer_unreadable")
    start = int(found.group(1))
    end = int(found.group(2)) + 1 if found.group(2) else size
    if not 0 <= start < end <= size:
        raise GraphRefused(202, "answer_unreadable")
    return start, end


def _refusal(response: requests.Response) -> GraphRefused:
    """Graph's error code from its error body (`{"error": {"code": ...}}`), or one named after the status."""
    code = f"graph_{response.status_code}"
    try:
        found = json.loads(response.content)["error"]["code"]
        if isinstance(found, str) and ERROR_CODE.fullmatch(found):
            code = found
    except (ValueError, KeyError, TypeError):
        pass
    return GraphRefused(response.status_code, code)


def _retry_after(response: requests.Response, default: float) -> float:
    """Retry-After in seconds (a number, or an HTTP date); `default` when there is none that reads."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return min(MAX_RETRY_AFTER_S, seconds) if seconds >= 0 else default
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    return min(MAX_RETRY_AFTER_S, max(0.0, when.timestamp() - time.time()))
