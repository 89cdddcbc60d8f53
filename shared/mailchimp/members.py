"""Members pushed from Dynamics 365 to a Mailchimp audience: passed through, never stored.

Each member is upserted at once (`PUT /lists/{list}/members/{hash}`), up to 10 at a time (Mailchimp's limit per
API key). Only merge fields the dataset declares go to Mailchimp; the names of the others come back, never their
values. Nothing of a member is written to PackCloud's storage: the audit gets one entry per call, with counts.
A 429 or a 5xx from Mailchimp stops the call (no further member is sent) and answers 503 with Retry-After; the
members already upserted stay, and since an upsert of the same member is the same upsert, the CRM retries the
whole call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StrictBool, StrictFloat, StrictInt, StrictStr

from shared.core.errors import Unprocessable, UpstreamUnavailable, field_problems
from shared.core.fieldtypes import InvalidValue, normalise
from shared.core.names import shown_name
from shared.mailchimp.client import MAX_CONNECTIONS, Answer, MailchimpApi
from shared.registry.models import AudienceId, DatasetDoc

MAX_MEMBERS = 500
MAX_TAGS = 50
MAX_DROPPED_SHOWN = 50
MemberStatus = Literal["subscribed", "unsubscribed", "pending", "transactional"]
MergeValue = StrictStr | StrictInt | StrictFloat | StrictBool | None
MergeName = Annotated[str, Field(min_length=1, max_length=64)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class MemberIn(Strict):
    email: EmailStr
    status: MemberStatus = "subscribed"
    merge_fields: dict[MergeName, MergeValue] = Field(default_factory=dict, max_length=100)
    tags: tuple[StrictStr, ...] = Field(default=(), max_length=MAX_TAGS)


class MembersIn(Strict):
    list_id: AudienceId
    members: tuple[MemberIn, ...] = Field(min_length=1, max_length=MAX_MEMBERS)


class RemovalIn(Strict):
    list_id: AudienceId
    emails: tuple[EmailStr, ...] = Field(min_length=1, max_length=MAX_MEMBERS)


Outcome = Literal["created", "updated", "refused", "archived", "deleted", "not_found"]


@dataclass(frozen=True)
class MemberResult:
    index: int
    status: Outcome
    reason: str | None = None

    def public(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"index": self.index, "status": self.status}
        if self.reason is not None:
            shown["reason"] = self.reason
        return shown


@dataclass(frozen=True)
class JobResult:
    list_id: str
    results: list[MemberResult]
    dropped_fields: tuple[str, ...] = ()

    def counts(self) -> dict[str, int]:
        counted: dict[str, int] = {}
        for result in self.results:
            counted[result.status] = counted.get(result.status, 0) + 1
        return counted

    def public(self) -> dict[str, Any]:
        return {
            "list_id": self.list_id,
            "counts": self.counts(),
            "results": [result.public() for result in self.results],
            "dropped_fields": list(self.dropped_fields),
        }


def require_audience(dataset: DatasetDoc, list_id: str) -> None:
    if list_id not in dataset.mailchimp_audiences:
        raise Unprocessable(
            "audience_not_allowed",
            "the dataset does not allow this audience (list_id): see its mailchimp_audiences",
            errors=[{"field": "list_id", "reason": "not one of the dataset's mailchimp_audiences"}],
        )


def merge_fields(dataset: DatasetDoc, index: int, given: dict[str, MergeValue], dropped: set[str]) -> dict[str, Any]:
    """The declared merge fields, each validated by its field's type, under its Mailchimp tag (FNAME)."""
    kept: dict[str, Any] = {}
    problems = []
    for name, value in given.items():
        spec = dataset.field(name.lower())
        if spec is None:
            dropped.add(shown_name(name))
            continue
        if value is None or value == "":
            kept[spec.name.upper()] = ""
            continue
        try:
            options = spec.options or ()
            kept[spec.name.upper()] = normalise(spec.type, value, max_length=spec.max_length, options=options)
        except InvalidValue as reason:
            problems.append({"field": f"members[{index}].merge_fields.{spec.name}", "reason": str(reason)})
    if problems:
        raise field_problems("invalid_members", "some members' merge fields do not fit the dataset", problems)
    return kept


def created(answer: Answer) -> bool:
    """Mailchimp's PUT answers 200 either way; a member it has just added has no opt-in or sign-up time before
    its last change. (One added long ago that never opted in reads as created again: the rule cannot tell.)"""
    body = answer.body
    changed = str(body.get("last_changed") or "")
    earlier = [str(body.get(name) or "") for name in ("timestamp_opt", "timestamp_signup")]
    return all(moment in ("", changed) for moment in earlier)


class Job:
    """One call's members, sent at most 10 at a time; the first 429 or 5xx stops sending."""

    def __init__(self, api: MailchimpApi) -> None:
        self._api = api
        self._stopped = threading.Event()
        self._retry_after: int | None = None

    def run(self, count: int, send: Callable[[int], MemberResult | Answer]) -> list[MemberResult]:
        with ThreadPoolExecutor(max_workers=min(MAX_CONNECTIONS, count), thread_name_prefix="mailchimp") as pool:
            outcomes = list(pool.map(lambda index: self._one(index, send), range(count)))
        if self._stopped.is_set():
            raise UpstreamUnavailable(
                "mailchimp_unavailable",
                "Mailchimp is overloaded or unavailable; members already sent stay, retry the whole call",
                retry_after=self._retry_after or 10,
            )
        return [outcome for outcome in outcomes if outcome is not None]

    def _one(self, index: int, send: Callable[[int], MemberResult | Answer]) -> MemberResult | None:
        if self._stopped.is_set():
            return None
        outcome = send(index)
        if isinstance(outcome, Answer):
            self._retry_after = outcome.retry_after
            self._stopped.set()
            return None
        return outcome


def upsert_all(api: MailchimpApi, dataset: DatasetDoc, request: MembersIn) -> JobResult:
    require_audience(dataset, request.list_id)
    dropped: set[str] = set()
    bodies = [
        {
            "email_address": member.email,
            "status_if_new": member.status,
            "status": member.status,
            "merge_fields": merge_fields(dataset, index, member.merge_fields, dropped),
        }
        for index, member in enumerate(request.members)
    ]

    def send(index: int) -> MemberResult | Answer:
        answer = api.upsert_member(request.list_id, bodies[index])
        if answer.throttled:
            return answer
        if answer.status != 200:
            return MemberResult(index, "refused", answer.reason)
        tags = request.members[index].tags
        if tags:
            tagged = api.tag_member(request.list_id, request.members[index].email, tags)
            if tagged.throttled:
                return tagged
            if tagged.status >= 300:
                return MemberResult(index, "refused", f"tags: {tagged.reason}")
        return MemberResult(index, "created" if created(answer) else "updated")

    results = Job(api).run(len(bodies), send)
    return JobResult(request.list_id, results, tuple(sorted(dropped))[:MAX_DROPPED_SHOWN])


def remove_all(api: MailchimpApi, dataset: DatasetDoc, request: RemovalIn, *, permanent: bool) -> JobResult:
    """Archive each member (Mailchimp keeps it, unsubscribed and hidden), or delete it permanently (Mailchimp
    forgets it and will not let the address be re-imported)."""
    require_audience(dataset, request.list_id)
    return JobResult(request.list_id, remove(api, request.list_id, request.emails, permanent=permanent))


def remove(api: MailchimpApi, list_id: str, emails: Iterable[str], *, permanent: bool) -> list[MemberResult]:
    addresses = list(emails)

    def send(index: int) -> MemberResult | Answer:
        email = addresses[index]
        answer = api.delete_member_permanently(list_id, email) if permanent else api.archive_member(list_id, email)
        if answer.throttled:
            return answer
        if answer.status == 404:
            return MemberResult(index, "not_found")
        if answer.status >= 300:
            return MemberResult(index, "refused", answer.reason)
        return MemberResult(index, "deleted" if permanent else "archived")

    return Job(api).run(len(addresses), send)
