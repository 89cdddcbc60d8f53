"""Web-form submissions per second through the local host against raw SDK uploads of the same record bytes.

The raw baseline uploads the bytes of a stored form record with the same blob index tags: the Put Blob
request the capture store sends, without PackCloud around it. Submissions carry no Idempotency-Key, so each
is one write; with a key it is two (the marker, then the record), which the result reports apart.

The per-client limit stays on but is set out of reach: the benchmark measures the capture path, and all
its clients share one address.

Target: submission rate >= 0.5 x raw rate, one storage write per accepted submission.
"""

from __future__ import annotations

import json
import uuid

import httpx

from bench.common import (
    BROWSER_UA,
    against_raw,
    in_process_services,
    raw_upload_rate,
    run_concurrently,
    stack_with_dataset,
    upload_record,
    write_results,
)
from devenv.demo import demo_form_dataset
from shared.webform.intake import FormPost

CLIENTS = 16
PER_CLIENT = 120
ROUNDS = 3
ORIGIN = "https://www.contoso.example"
SUBMISSION = {"email": "jane.roe@example.com", "name": "Jane Roe", "topic": "support", "rating": 9, "consent": "yes"}


def sample_record_bytes() -> bytes:
    record = {
        "id": "20261123T100000000000Z-0123456789abcdef",
        "tenant": "bench",
        "dataset": "contact",
        "captured_at": "2026-11-23T10:00:00Z",
        "expires_at": "2026-11-30T10:00:00Z",
        "fields": {k: v for k, v in SUBMISSION.items() if k != "consent"},
        "dropped_fields": 0,
        "meta": {"consent": {"given": True, "text_version": "contact-2026-11", "at": "2026-11-23T10:00:00Z"}},
    }
    return json.dumps(record).encode()


def raw_uploads(connection_string: str) -> float:
    tags = {"t": "bench", "d": "contact", "cap": "20261123T100000Z", "exp": "20261130T100000Z", "sub": "0" * 40}
    return raw_upload_rate(connection_string, upload_record(sample_record_bytes(), tags), CLIENTS, PER_CLIENT)


def submissions(api: str, tenant: str):
    def worker():
        client = httpx.Client(base_url=api, headers={"user-agent": BROWSER_UA, "origin": ORIGIN})

        def submit():
            answer = client.post(f"/forms/{tenant}/contact", json=SUBMISSION)
            if answer.status_code != 201:
                raise RuntimeError(f"form answered {answer.status_code}")

        return submit

    return run_concurrently(worker, CLIENTS, PER_CLIENT)


def writes_per_submission(env: dict[str, str], tenant: str, keyed: bool) -> float:
    """The same intake code in process, counting the HTTP requests the SDK sends."""
    services = in_process_services(env, form_rate_per_minute=0)
    services.forms.target(tenant, "contact")  # warm the registry cache, as a running instance has
    count = 100
    body = json.dumps(SUBMISSION).encode()
    before = services.storage.transport.sent
    for _ in range(count):
        headers = {"origin": ORIGIN, "content-type": "application/json", "x-forwarded-for": "203.0.113.9"}
        if keyed:
            headers["idempotency-key"] = uuid.uuid4().hex
        answer = services.forms.submit(FormPost(tenant, "contact", body, headers))
        assert answer.status == 201, answer.body
    return (services.storage.transport.sent - before) / count


def main() -> dict[str, float]:
    settings = {"PACKCLOUD_FORM_RATE_PER_MINUTE": "100000"}
    with stack_with_dataset("contact", demo_form_dataset(ORIGIN), settings) as tenant:
        stack = tenant.stack
        rates = against_raw(
            lambda: submissions(stack.api, tenant.id), lambda: raw_uploads(stack.azurite.connection_string), ROUNDS
        )
        writes = writes_per_submission(stack.env, tenant.id, keyed=False)
        keyed_writes = writes_per_submission(stack.env, tenant.id, keyed=True)
    rate, raw_rate = rates["rate"], rates["raw_rate"]
    result = {
        **rates,
        "writes_per_submission": writes,
        "writes_per_keyed_submission": keyed_writes,
        "clients": CLIENTS,
    }
    write_results("webform", result)
    print(
        f"webform: {rate:.0f} submissions/s through the local host vs {raw_rate:.0f} raw SDK uploads/s "
        f"-> ratio {result['ratio']} (target >= 0.5); p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms; "
        f"{writes} storage requests per submission (target 1), {keyed_writes} with an Idempotency-Key"
    )
    return result


if __name__ == "__main__":
    main()
