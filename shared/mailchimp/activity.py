"""Campaign activity (opens, clicks, bounces per member) read from Mailchimp's reports into `mailchimpevent`
datasets that ask for it (`campaign_activity: true`), by a timer.

Per dataset a cursor (`registry/mailchimp/activity/<tenant>/<dataset>.json`, campaign ids, offsets and times
only: no personal data) says, for each recent campaign, the time of the last complete sweep (`since`) and how
far the current sweep got (`offset`). A sweep reads `GET /reports/{campaign}/email-activity?since=...` page by
page and keeps the activities after `since`; when a page comes back short the sweep is done and `since` moves
to the latest activity time the sweep saw, so that the next sweep reads only what came after it and nothing is
stored twice. (An activity Mailchimp reports late, with a time before that, is not read: the price of never
storing one twice.) A run reads at most `max_pages` pages in all, so a big campaign is spread over runs.

Crash safety: before a page's records are written, the cursor names the page and a stamp (a time). A record's
id is that stamp and a keyed hash of the activity, so a run killed midway, which reads the same page again,
finds the records it wrote under the earlier stamp and writes only the others: every activity is stored once.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.capture.store import CaptureStore, Target
from shared.core.clock import Clock
from shared.core.errors import PackCloudError
from shared.core.keys import derive_key
from shared.mailchimp.client import MailchimpApi
from shared.registry.models import DatasetDoc
from shared.storage.blobs import JSON_CONTENT, REGISTRY, Storage, storage_errors

PAGE_SIZE = 100
MAX_CAMPAIGNS = 50
ACTIONS = frozenset({"open", "click", "bounce"})
MAX_STAMPS = 5


def cursor_blob(tenant: str, dataset: str) -> str:
    return f"mailchimp/activity/{tenant}/{dataset}.json"


class CampaignCursor(BaseModel):
    model_config = ConfigDict(extra="forbid")

    list_id: str = ""
    since: datetime | None = None  # the latest activity time of the last complete sweep; None before the first
    latest: datetime | None = None  # the latest activity time the current sweep has seen
    offset: int = 0
    # The stamps of the page being written (the last one current): a resumed page finds its records by them.
    stamps: list[datetime] = Field(default_factory=list)


class ActivityCursor(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset_generation: str = ""
    campaigns: dict[str, CampaignCursor] = Field(default_factory=dict)


@dataclass
class ActivityReport:
    pages: int = 0
    stored: int = 0
    skipped: int = 0
    problems: list[str] = field(default_factory=list)


class ActivityReader:
    def __init__(self, storage: Storage, capture: CaptureStore, clock: Clock, master_key: str) -> None:
        self._storage = storage
        self._capture = capture
        self._clock = clock
        self._master_key = master_key

    def read(self, api: MailchimpApi, target: Target, max_pages: int) -> ActivityReport:
        report = ActivityReport()
        dataset = target.dataset
        cursor = self._cursor(dataset)
        now = self._clock.now()
        lookback = (now - timedelta(days=dataset.retention_days)).isoformat()
        answer = api.sent_campaigns(lookback, MAX_CAMPAIGNS, 0)
        if answer.status != 200:
            report.problems.append(f"campaigns: {answer.reason}")
            return report
        recent = {
            str(item.get("id")): str((item.get("recipients") or {}).get("list_id", ""))
            for item in answer.body.get("campaigns", [])[:MAX_CAMPAIGNS]
            if isinstance(item, dict) and item.get("id")
        }
        # Campaigns older than the retention drop out of the cursor, which stays bounded.
        cursor.campaigns = {cid: state for cid, state in cursor.campaigns.items() if cid in recent}
        for campaign_id, list_id in sorted(recent.items()):
            state = cursor.campaigns.setdefault(campaign_id, CampaignCursor(list_id=list_id))
            while report.pages < max_pages:
                done = self._page(api, target, cursor, campaign_id, state, report)
                if done is None or done:
                    break
        return report

    def _page(
        self,
        api: MailchimpApi,
        target: Target,
        cursor: ActivityCursor,
        campaign_id: str,
        state: CampaignCursor,
        report: ActivityReport,
    ) -> bool | None:
        """One page of one campaign's sweep; True when the sweep is done, None when Mailchimp refused."""
        now = self._clock.now()
        state.stamps = [*state.stamps, now][-MAX_STAMPS:]
        self._save(target.dataset, cursor)
        answer = api.email_activity(campaign_id, PAGE_SIZE, state.offset, since=state.since)
        if answer.status != 200:
            report.problems.append(f"campaign activity: {answer.reason}")
            return None
        report.pages += 1
        members = [item for item in answer.body.get("emails", []) if isinstance(item, dict)][:PAGE_SIZE]
        for member in members:
            for activity in member.get("activity", []) if isinstance(member.get("activity"), list) else []:
                if isinstance(activity, dict):
                    self._store(target, campaign_id, state, member, activity, report)
        state.offset += len(members)
        state.stamps = []
        if len(members) < PAGE_SIZE:
            state.since, state.latest, state.offset = state.latest or state.since, None, 0
            self._save(target.dataset, cursor)
            return True
        self._save(target.dataset, cursor)
        return False

    def _store(
        self,
        target: Target,
        campaign_id: str,
        state: CampaignCursor,
        member: dict[str, Any],
        activity: dict[str, Any],
        report: ActivityReport,
    ) -> None:
        action = str(activity.get("action", ""))
        when = _time(activity.get("timestamp"))
        if action not in ACTIONS or when is None or (state.since is not None and when <= state.since):
            return
        state.latest = max(state.latest or when, when)
        email = str(member.get("email_address", ""))
        key = self._activity_key(target, campaign_id, email, action, when, str(activity.get("url", "")))
        ids = [f"{stamp.strftime('%Y%m%dT%H%M%S%fZ')}-{key}" for stamp in state.stamps]
        if any(self._capture.exists(target.tenant.id, target.dataset.id, earlier) for earlier in ids[:-1]):
            report.skipped += 1
            return
        values = {
            "event": action,
            "email": email,
            "occurred_at": when.isoformat(),
            "campaign_id": campaign_id,
            "list_id": str(member.get("list_id") or state.list_id),
            "url": activity.get("url"),
        }
        try:
            prepared = self._capture.prepare(target, values, lenient=True)
        except PackCloudError:
            report.skipped += 1  # an activity whose values do not fit the declaration is not kept
            return
        self._capture.commit(target, prepared.record.model_copy(update={"id": ids[-1]}))
        report.stored += 1

    def _activity_key(self, target: Target, *parts: object) -> str:
        key = derive_key(self._master_key, "mailchimp-activity", target.tenant.id)
        message = "|".join(str(part) for part in (target.dataset.id, *parts)).encode()
        return hmac.new(key, message, hashlib.sha256).hexdigest()[:16]

    def _cursor(self, dataset: DatasetDoc) -> ActivityCursor:
        body, _ = self._storage.read_json(REGISTRY, cursor_blob(dataset.tenant, dataset.id))
        cursor = ActivityCursor.model_validate(body) if body is not None else None
        if cursor is None or cursor.dataset_generation != dataset.generation:
            return ActivityCursor(dataset_generation=dataset.generation)
        return cursor

    def _save(self, dataset: DatasetDoc, cursor: ActivityCursor) -> None:
        with storage_errors():
            self._storage.container(REGISTRY).upload_blob(
                cursor_blob(dataset.tenant, dataset.id),
                cursor.model_dump_json().encode(),
                overwrite=True,
                content_settings=JSON_CONTENT,
            )


def _time(value: object) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None
