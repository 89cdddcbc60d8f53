"""The web form's async path (the route's: an async function whose writes the aio client awaits) against its sync
one, on the real Azurite: the same answers and the same stored records for the same bodies; and the shared objects
(the rate limiter, the capture counts, the idempotency markers) right with 8 posts at once on one event loop, and
with posts from worker threads at the same time. Results are checked, never timing."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from shared.core.errors import PackCloudError
from shared.registry.models import Dataset, TenantIn
from shared.services import Services
from shared.webform.intake import FormAnswer, FormPost
from tests.factories import FORM, ORIGIN, all_blobs, run_on_own_loop

JSON = {"origin": ORIGIN, "content-type": "application/json"}
URLENCODED = {"origin": ORIGIN, "content-type": "application/x-www-form-urlencoded"}
NAVIGATION = {**URLENCODED, "sec-fetch-mode": "navigate", "referer": f"{ORIGIN}/contact?utm=x"}
BOUNDARY = "----packcloud0123"
MULTIPART = {"origin": ORIGIN, "content-type": f"multipart/form-data; boundary={BOUNDARY}"}
RECORD_ID = re.compile(r"\d{8}T\d{12}Z-[0-9a-f]{16}")
LEVEL = 8
PER_TENANT = ("tenant", "captured_at", "tenant_generation", "dataset_generation")  # differ between the two tenants


def multipart(fields: dict[str, str]) -> bytes:
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in fields.items()
    ]
    return ("".join(parts) + f"--{BOUNDARY}--\r\n").encode()


VALID = {"email": "Jane.Roe@Example.com", "name": "Jane", "phone": "+442079460958", "consent": "yes"}
# (what the case is, the body, its headers, the idempotency key or None)
CASES: list[tuple[str, bytes, dict[str, str], str | None]] = [
    ("json", json.dumps({**VALID, "rating": 9, "consent": True}).encode(), JSON, None),
    ("urlencoded", b"email=jane%40example.com&topic=sales&newsletter=on&consent=on", URLENCODED, None),
    ("multipart", multipart({**VALID, "budget": "1999.5", "start": "2026-12-01"}), MULTIPART, None),
    ("undeclared fields dropped", json.dumps({**VALID, "shoe_size": "42", "_packcloud_x": "1"}).encode(), JSON, None),
    ("invalid fields", json.dumps({"email": "no", "phone": "call me", "consent": True}).encode(), JSON, None),
    ("no consent", json.dumps({"email": "jane@example.com"}).encode(), JSON, None),
    ("honeypot", json.dumps({**VALID, "fax_number": "555"}).encode(), JSON, None),
    ("unsupported type", b"email=jane", {"origin": ORIGIN, "content-type": "text/plain"}, None),
    ("too large", b"a=" + b"x" * 70_000, URLENCODED, None),
    ("bad json", b"{", JSON, None),
    ("repeated field", b"email=a%40example.com&email=b%40example.com", URLENCODED, None),
    ("plain post", b"email=jane%40example.com&consent=on", NAVIGATION, None),
    ("plain post refused", b"email=nope&consent=on", NAVIGATION, None),
    ("keyed", json.dumps(VALID).encode(), {**JSON, "idempotency-key": "submission-0001"}, "submission-0001"),
    ("keyed again", json.dumps(VALID).encode(), {**JSON, "idempotency-key": "submission-0001"}, "submission-0001"),
    (
        "key in the form",
        b"email=jane%40example.com&consent=on&_packcloud_submission=submission-0002",
        URLENCODED,
        "submission-0002",
    ),
    ("bad key", json.dumps(VALID).encode(), {**JSON, "idempotency-key": "bad key!"}, None),
    ("other site", json.dumps(VALID).encode(), {**JSON, "origin": "https://evil.example"}, None),
    ("no origin", json.dumps(VALID).encode(), {"content-type": "application/json"}, None),
]


def tenant_with_form(services: Services) -> str:
    tenant = "fa" + uuid.uuid4().hex[:10]
    services.registry.put_tenant(tenant, TenantIn())
    services.registry.put_dataset(tenant, "contact", Dataset.model_validate(FORM))
    return tenant


def outcome(answer: FormAnswer | PackCloudError, ids: dict[str, str]) -> Any:
    """An answer with each record id replaced by the order it was first seen in (ids differ between two runs)."""
    if isinstance(answer, PackCloudError):
        return ("raised", answer.status, answer.body())

    def same_ids(text: str) -> str:
        return RECORD_ID.sub(lambda found: ids.setdefault(found.group(), f"id{len(ids)}"), text)

    return (answer.status, same_ids(json.dumps(answer.body, sort_keys=True)), same_ids(json.dumps(answer.headers)))


def stored(azurite: Any, tenant: str, ids: dict[str, str]) -> list[Any]:
    """The records as stored, ids replaced as in `outcome`, in the order of those."""
    records = [json.loads(body) for body in all_blobs(azurite, "records", f"{tenant}/contact/").values()]
    shown = [{**record, "id": ids.get(record["id"], "unanswered"), **dict.fromkeys(PER_TENANT)} for record in records]
    return sorted(shown, key=lambda record: record["id"])


def test_the_async_path_answers_and_stores_as_the_sync_path(services, azurite):
    sync_tenant, async_tenant = tenant_with_form(services), tenant_with_form(services)
    sync_ids: dict[str, str] = {}
    async_ids: dict[str, str] = {}

    def sync_side() -> list[Any]:
        answers = []
        for _, body, headers, _ in CASES:
            try:
                answers.append(
                    outcome(services.forms.submit(FormPost(sync_tenant, "contact", body, headers)), sync_ids)
                )
            except PackCloudError as error:
                answers.append(outcome(error, sync_ids))
        return answers

    async def async_side() -> list[Any]:
        answers = []
        for _, body, headers, _ in CASES:
            try:
                answer = await services.forms.submit_async(FormPost(async_tenant, "contact", body, headers))
                answers.append(outcome(answer, async_ids))
            except PackCloudError as error:
                answers.append(outcome(error, async_ids))
        return answers

    expected = sync_side()
    answers = run_on_own_loop(async_side())
    for (case, *_), want, got in zip(CASES, expected, answers, strict=True):
        assert got == want, case
    names = [case for case, *_ in CASES]
    statuses = {
        name: answer[1] if answer[0] == "raised" else answer[0] for name, answer in zip(names, answers, strict=True)
    }
    # The cases cover what they are named for, so the comparison compares something.
    assert statuses["json"] == statuses["keyed"] == statuses["key in the form"] == 201 and statuses["plain post"] == 303
    assert statuses["invalid fields"] == 422 and statuses["too large"] == 413 and statuses["other site"] == 403
    assert '"Idempotent-Replayed": "true"' in answers[names.index("keyed again")][2]
    assert stored(azurite, async_tenant, async_ids) == stored(azurite, sync_tenant, sync_ids)
    # json, urlencoded, multipart, undeclared fields dropped, plain post, keyed, key in the form
    assert len(stored(azurite, async_tenant, async_ids)) == 7


def test_an_unknown_dataset_is_refused_the_same_way(services):
    tenant = tenant_with_form(services)
    post = FormPost(tenant, "nosuchform", b"{}", JSON)
    with pytest.raises(PackCloudError) as sync_error:
        services.forms.submit(post)
    with pytest.raises(PackCloudError) as async_error:
        run_on_own_loop(services.forms.submit_async(post))
    assert async_error.value.body() == sync_error.value.body() and async_error.value.status == 404


def limited(services: Services, per_minute: int) -> Services:
    return Services.build(services.settings.model_copy(update={"form_rate_per_minute": per_minute}), services.clock)


def test_the_rate_limiter_and_the_counts_are_right_with_posts_at_once_on_the_loop_and_in_threads(services, azurite):
    limit = 10
    wired = limited(services, limit)  # the test clock stands still: no token refills during the test
    tenant = tenant_with_form(wired)
    body = json.dumps({**VALID, "consent": True}).encode()
    post = FormPost(tenant, "contact", body, {**JSON, "x-forwarded-for": "203.0.113.7"})

    async def on_the_loop() -> list[FormAnswer]:
        return list(await asyncio.gather(*(wired.forms.submit_async(post) for _ in range(LEVEL))))

    # LEVEL posts on one event loop and LEVEL in worker threads, all at once, from one client address.
    with ThreadPoolExecutor(LEVEL + 1) as pool:
        looped = pool.submit(asyncio.run, on_the_loop())
        threaded = [pool.submit(wired.forms.submit, post) for _ in range(LEVEL)]
        answers = looped.result() + [future.result() for future in threaded]

    assert Counter(answer.status for answer in answers) == {201: limit, 429: 2 * LEVEL - limit}
    admitted = sorted(str(answer.body["id"]) for answer in answers if answer.status == 201 and answer.body)
    records = [json.loads(b) for b in all_blobs(azurite, "records", f"{tenant}/contact/").values()]
    assert sorted(record["id"] for record in records) == admitted and len(set(admitted)) == limit
    pending = {key: count for key, count in wired.counts.pending().items() if key[0] == tenant}
    assert sum(pending.values()) == limit


def test_one_submission_sent_at_once_on_the_loop_is_stored_once(services, azurite):
    tenant = tenant_with_form(services)
    headers = {**JSON, "idempotency-key": "submission-" + uuid.uuid4().hex}
    post = FormPost(tenant, "contact", json.dumps(VALID).encode(), headers)

    async def at_once() -> list[FormAnswer]:
        return list(await asyncio.gather(*(services.forms.submit_async(post) for _ in range(LEVEL))))

    answers = run_on_own_loop(at_once())
    records = [json.loads(b) for b in all_blobs(azurite, "records", f"{tenant}/contact/").values()]
    assert len(records) == 1
    # The first is stored; the others are answered its id, or (while it is being stored) a 409 to retry.
    assert {answer.status for answer in answers} <= {201, 409}
    assert {answer.body["id"] for answer in answers if answer.status == 201 and answer.body} == {records[0]["id"]}
    refused = [answer.body for answer in answers if answer.status == 409]
    assert all(body is not None and body["error"] == "submission_in_progress" for body in refused)
    retried = run_on_own_loop(services.forms.submit_async(post))
    assert retried.status == 201 and retried.body is not None and retried.body["id"] == records[0]["id"]
    assert retried.headers.get("Idempotent-Replayed") == "true"
