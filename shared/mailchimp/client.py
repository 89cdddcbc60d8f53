"""Mailchimp's Marketing API over plain HTTP (httpx): the official `mailchimp-marketing` client has had no release
since 2022, and PackCloud needs five endpoints of it.

One `MailchimpApi` per API key holds one connection pool of at most 10 connections, Mailchimp's limit of
simultaneous connections per key, shared by every call with that key in this process. The key is sent as HTTP
Basic auth and never logged: httpx logs no headers, and errors name Mailchimp's status and title only.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from shared.core.numbers import ascii_int

# Mailchimp's documented limit of simultaneous connections per API key.
MAX_CONNECTIONS = 10
# What a Retry-After of Mailchimp's is worth when it gives none (its 429s usually do not).
DEFAULT_RETRY_AFTER = 10
TIMEOUT_S = 15.0
# Mailchimp's problem titles are short; a longer one is cut, so an answer never grows with what came back.
MAX_REASON = 200


def subscriber_hash(email: str) -> str:
    """Mailchimp's member id: the MD5 of the lower-cased address (an identifier, not a protection)."""
    return hashlib.md5(email.strip().lower().encode(), usedforsecurity=False).hexdigest()


def data_centre(api_key: str) -> str:
    """The data centre a key belongs to: its suffix after the dash (`…-us21`)."""
    return api_key.rsplit("-", 1)[1]


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    retry_after: int | None

    @property
    def throttled(self) -> bool:
        """Mailchimp's overload or outage: the whole call stops and is retried later."""
        return self.status == 429 or self.status >= 500

    @property
    def reason(self) -> str:
        """Mailchimp's problem title (and, for a refused member, its field errors' names), never a value."""
        title = str(self.body.get("title") or f"HTTP {self.status}")[:MAX_REASON]
        fields = [str(item.get("field", ""))[:64] for item in self.body.get("errors", []) if isinstance(item, dict)]
        return f"{title} ({', '.join(sorted(set(filter(None, fields))))})" if any(fields) else title


class MailchimpApi:
    """The endpoints PackCloud uses, for one API key."""

    def __init__(self, base_url: str, api_key: str) -> None:
        self._client = httpx.Client(
            base_url=base_url,
            auth=("packcloud", api_key),
            timeout=TIMEOUT_S,
            limits=httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS),
            headers={"user-agent": "PackCloud"},
            follow_redirects=False,
        )
        # httpx's pool waits for a free connection, so no more than 10 are ever open; the semaphore also keeps
        # callers beyond 10 from queueing inside the pool, where they would count against its timeout.
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def close(self) -> None:
        self._client.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Answer:
        with self._slots:
            try:
                response = self._client.request(method, path, **kwargs)
            except httpx.HTTPError:
                return Answer(503, {"title": "Mailchimp could not be reached"}, DEFAULT_RETRY_AFTER)
        try:
            body = response.json() if response.content else {}
        except ValueError:
            body = {}
        retry = ascii_int(response.headers.get("retry-after", ""), 0, 3600)
        return Answer(response.status_code, body if isinstance(body, dict) else {}, retry)

    def ping(self) -> Answer:
        return self.request("GET", "/ping")

    def upsert_member(self, list_id: str, body: dict[str, Any]) -> Answer:
        return self.request("PUT", f"/lists/{list_id}/members/{subscriber_hash(body['email_address'])}", json=body)

    def tag_member(self, list_id: str, email: str, tags: tuple[str, ...]) -> Answer:
        body = {"tags": [{"name": name, "status": "active"} for name in tags]}
        return self.request("POST", f"/lists/{list_id}/members/{subscriber_hash(email)}/tags", json=body)

    def archive_member(self, list_id: str, email: str) -> Answer:
        return self.request("DELETE", f"/lists/{list_id}/members/{subscriber_hash(email)}")

    def delete_member_permanently(self, list_id: str, email: str) -> Answer:
        return self.request("POST", f"/lists/{list_id}/members/{subscriber_hash(email)}/actions/delete-permanent")

    def sent_campaigns(self, since: str, count: int, offset: int) -> Answer:
        params = {"status": "sent", "since_send_time": since, "count": count, "offset": offset}
        params["fields"] = "campaigns.id,campaigns.send_time,campaigns.recipients.list_id,total_items"
        return self.request("GET", "/campaigns", params=params)

    def email_activity(self, campaign_id: str, count: int, offset: int, since: datetime | None = None) -> Answer:
        params: dict[str, Any] = {"count": count, "offset": offset}
        if since is not None:
            params["since"] = since.isoformat()
        return self.request("GET", f"/reports/{campaign_id}/email-activity", params=params)


class MailchimpApis:
    """One `MailchimpApi` per API key for the life of the process, so the cap of 10 holds across calls."""

    def __init__(self, base_url_template: str) -> None:
        self._template = base_url_template
        self._apis: dict[str, MailchimpApi] = {}
        self._lock = threading.Lock()

    def for_key(self, api_key: str) -> MailchimpApi:
        with self._lock:
            api = self._apis.get(api_key)
            if api is None:
                api = MailchimpApi(self._template.format(dc=data_centre(api_key)), api_key)
                self._apis[api_key] = api
            return api
