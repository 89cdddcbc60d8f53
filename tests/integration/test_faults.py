"""Faults: storage stopped or slow while requests flow, and the host killed during captures.

Each test has its own Azurite on disk (so it can be stopped and started again on the same port and keep
its data) and its own local host. What is checked is what a client and the controller would see: a clear
503 with Retry-After while storage is away, every answer that said "stored" really stored, nothing
half-written, and service again as soon as storage is back, without a restart.

(A purge process killed midway, and finished by the next run, is in tests/integration/test_lifecycle.py.)
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from devenv.azurite import Azurite, free_port, start_azurite
from devenv.demo import demo_dataset, demo_form_dataset, demo_signins_dataset
from devenv.local_host import start_local_host, stop_local_host
from shared.registry.models import Record
from tests.factories import BROWSER_UA, FUNCTION_KEY, HOST_MASTER_KEY, all_blobs, settings_env
from tests.integration.slow_proxy import SlowProxy

TENANT = "acme"
ORIGIN = "https://www.contoso.example"
GIF_MAGIC = b"GIF89a"
UNKNOWN_RECORD = "20261123T100000000000Z-0123456789abcdef"


@dataclass
class Stack:
    tmp: Path
    azurite: Azurite
    api: str
    key: str
    env: dict[str, str]
    host: object = None
    host_port: int = 0
    proxy: SlowProxy | None = None

    def stop_storage(self) -> None:
        self.azurite.stop()

    def start_storage(self) -> None:
        self.azurite = start_azurite(port=self.azurite.port, location=self.tmp / "azurite")

    def kill_host(self) -> None:
        self.host.send_signal(signal.SIGKILL)  # type: ignore[attr-defined]
        self.host.wait()  # type: ignore[attr-defined]

    def start_host(self) -> None:
        self.host = start_local_host(self.host_port, self.env)

    def client(self, **headers: str) -> httpx.Client:
        return httpx.Client(base_url=self.api, headers=headers, timeout=60)


@contextmanager
def stack(tmp: Path, *, slow_proxy: bool = False, **settings: str) -> Iterator[Stack]:
    """Azurite on disk, a host (reaching storage through a SlowProxy if asked), a tenant with one dataset
    per capability and a sequence."""
    azurite = start_azurite(location=tmp / "azurite")
    port = free_port()
    proxy = SlowProxy(azurite.port) if slow_proxy else None
    storage = azurite if proxy is None else Azurite(proxy.port, azurite.process, None)
    env = {
        **os.environ,
        **settings_env(storage),
        "DEVHOST_FUNCTION_KEY": FUNCTION_KEY,
        "DEVHOST_MASTER_KEY": HOST_MASTER_KEY,
        "PACKCLOUD_FORM_RATE_PER_MINUTE": "0",
        **{f"PACKCLOUD_{name.upper()}": value for name, value in settings.items()},
    }
    current = Stack(tmp, azurite, f"http://127.0.0.1:{port}/api", "", env, host_port=port, proxy=proxy)
    try:
        current.start_host()
        with current.client(**{"x-functions-key": FUNCTION_KEY}) as manage:
            created = manage.put(f"/manage/tenants/{TENANT}", json={})
            assert created.status_code == 201, created.text
            current.key = created.json()["api_key"]
            for name, declaration in DATASETS.items():
                answer = manage.put(f"/manage/tenants/{TENANT}/datasets/{name}", json=declaration)
                assert answer.status_code == 201, answer.text
            assert manage.put(f"/manage/tenants/{TENANT}/sequences/invoice", json={"format": "{SEQNUM:6}"}).is_success
        yield current
    finally:
        if current.host is not None and current.host.poll() is None:  # type: ignore[attr-defined]
            stop_local_host(current.host)  # type: ignore[arg-type]
        current.azurite.stop()
        if proxy is not None:
            proxy.close()


DATASETS = {
    "visits": demo_dataset(ORIGIN),
    "contact": demo_form_dataset(ORIGIN),
    "signins": demo_signins_dataset(),
}


# One request of each capability, as the clients of the load send them; each answers how to find it in storage.
def pixel_hit(client: httpx.Client) -> tuple[httpx.Response, str]:
    visitor = uuid.uuid4().hex
    answer = client.get(
        f"/px/{TENANT}/visits",
        params={"page_url": ORIGIN + "/pricing", "visitor": visitor},
        headers={"user-agent": BROWSER_UA, "referer": ORIGIN + "/pricing"},
    )
    return answer, visitor


def form_post(client: httpx.Client, idempotency_key: str | None = None) -> httpx.Response:
    headers = {"origin": ORIGIN, "user-agent": BROWSER_UA}
    if idempotency_key:
        headers["idempotency-key"] = idempotency_key
    body = {"email": f"{uuid.uuid4().hex[:10]}@example.com", "topic": "sales", "consent": "on"}
    return client.post(f"/forms/{TENANT}/contact", json=body, headers=headers)


def sign_in(client: httpx.Client, key: str) -> httpx.Response:
    body = {"user_id": str(uuid.uuid4()), "ip": "81.2.69.160"}
    return client.post(f"/geologin/{TENANT}/signins", json=body, headers={"authorization": f"Bearer {key}"})


def stored_records(azurite: Azurite, dataset: str) -> list[Record]:
    """Every record blob of a dataset, each parsed in full: a half-written blob fails here."""
    return [Record.model_validate_json(body) for body in all_blobs(azurite, "records", f"{TENANT}/{dataset}/").values()]


@dataclass
class Outcomes:
    """What the clients were answered, by capability: statuses, and what a 2xx said was stored."""

    statuses: list[tuple[str, int]] = field(default_factory=list)
    pixel_visitors: list[str] = field(default_factory=list)
    form_ids: list[str] = field(default_factory=list)
    sign_in_ids: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def kinds_with(self, status: int) -> set[str]:
        with self.lock:
            return {kind for kind, answered in self.statuses if answered == status}

    def note(self, kind: str, status: int) -> None:
        with self.lock:
            self.statuses.append((kind, status))


def clients_until(
    stop: threading.Event, stack_: Stack, outcomes: Outcomes, tolerate_drops: bool
) -> list[threading.Thread]:
    """Three clients (pixel, form, sign-in) sending until `stop`; a form is retried with its idempotency key
    until it is stored, as the web-form snippet does. Connection errors are failures unless tolerated."""

    def run(work: Callable[[httpx.Client], None]) -> None:
        with stack_.client() as client:
            while not stop.is_set():
                try:
                    work(client)
                except httpx.TransportError as error:
                    if not tolerate_drops:
                        outcomes.failures.append(type(error).__name__)
                    time.sleep(0.1)

    def pixel(client: httpx.Client) -> None:
        answer, visitor = pixel_hit(client)
        outcomes.note("pixel", answer.status_code)
        assert answer.content.startswith(GIF_MAGIC)
        if answer.status_code == 200:
            with outcomes.lock:
                outcomes.pixel_visitors.append(visitor)

    def form(client: httpx.Client) -> None:
        key = uuid.uuid4().hex
        while True:
            try:
                answer = form_post(client, key)
            except httpx.TransportError:
                if stop.is_set():
                    return
                time.sleep(0.2)
                continue
            outcomes.note("form", answer.status_code)
            if answer.status_code == 201:
                with outcomes.lock:
                    outcomes.form_ids.append(answer.json()["id"])
                return
            time.sleep(min(2, int(answer.headers.get("retry-after", "1"))))

    def signin(client: httpx.Client) -> None:
        answer = sign_in(client, stack_.key)
        outcomes.note("geologin", answer.status_code)
        if answer.status_code == 201:
            with outcomes.lock:
                outcomes.sign_in_ids.append(answer.json()["id"])

    threads = [threading.Thread(target=run, args=(work,)) for work in (pixel, form, signin)]
    for thread in threads:
        thread.start()
    return threads


@contextmanager
def clients_running(current: Stack, *, tolerate_drops: bool) -> Iterator[Outcomes]:
    """Clients sending throughout the block: answered 30 times before it, and 30 times more after it."""
    outcomes, stop = Outcomes(), threading.Event()
    threads = clients_until(stop, current, outcomes, tolerate_drops)
    try:
        assert wait_for(lambda: len(outcomes.statuses) >= 30, 60)
        yield outcomes
        served = len(outcomes.statuses)
        assert wait_for(lambda: len(outcomes.statuses) >= served + 30, 60)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=120)


def assert_every_stored_answer_is_stored(azurite: Azurite, outcomes: Outcomes) -> None:
    visits = stored_records(azurite, "visits")
    forms = stored_records(azurite, "contact")
    sign_ins = stored_records(azurite, "signins")
    assert set(outcomes.pixel_visitors) <= {record.fields["visitor"] for record in visits}
    assert set(outcomes.form_ids) <= {record.id for record in forms}
    assert set(outcomes.sign_in_ids) <= {record.id for record in sign_ins}


def wait_for(predicate: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def shown_as_image(browser, url: str) -> int:
    """Chromium loads `url` as an image: its width, or 0 when the browser shows a broken image."""
    page = browser.new_page(user_agent=BROWSER_UA)
    try:
        return int(
            page.evaluate(
                """url => new Promise(done => {
                    const image = new Image();
                    image.onload = () => done(image.naturalWidth);
                    image.onerror = () => done(0);
                    image.src = url;
                })""",
                url,
            )
        )
    finally:
        page.close()


def every_endpoint(key: str) -> list[tuple[str, str, str, dict]]:
    """(name, method, path, request options) of every route that needs storage, with valid credentials."""
    tenant_key = {"authorization": f"Bearer {key}"}
    manage = {"x-functions-key": FUNCTION_KEY}
    form = {"origin": ORIGIN, "user-agent": BROWSER_UA}
    subject = {"subject": "someone@example.com"}
    return [
        (
            "forms",
            "POST",
            f"/forms/{TENANT}/contact",
            {"json": {"email": "a@example.com", "consent": "on"}, "headers": form},
        ),
        (
            "geologin",
            "POST",
            f"/geologin/{TENANT}/signins",
            {"json": {"user_id": str(uuid.uuid4())}, "headers": tenant_key},
        ),
        (
            "pixel beacon",
            "POST",
            f"/px/{TENANT}/visits",
            {
                "content": json.dumps({"page_url": ORIGIN + "/pricing", "visitor": "beacon"}),
                "headers": {**form, "content-type": "text/plain"},
            },
        ),
        ("autonumber", "POST", f"/autonumber/{TENANT}/invoice/next", {"headers": tenant_key}),
        ("sync", "GET", f"/sync/{TENANT}/contact", {"headers": tenant_key}),
        ("ack", "POST", f"/sync/{TENANT}/contact/ack", {"json": {"ids": [UNKNOWN_RECORD]}, "headers": tenant_key}),
        ("export", "POST", f"/privacy/{TENANT}/subjects/export", {"json": subject, "headers": tenant_key}),
        ("erase", "POST", f"/privacy/{TENANT}/subjects/erase", {"json": subject, "headers": tenant_key}),
        ("report", "GET", f"/privacy/{TENANT}/report", {"headers": tenant_key}),
        ("notice", "GET", f"/notice/{TENANT}/visits", {"params": {"format": "json"}}),
        ("tenant get", "GET", f"/manage/tenants/{TENANT}", {"headers": manage}),
        ("tenant put", "PUT", f"/manage/tenants/{TENANT}", {"json": {}, "headers": manage}),
        # The signing key only: the clients still running keep their API key.
        (
            "key rotation",
            "POST",
            f"/manage/tenants/{TENANT}/keys/rotate",
            {"json": {"api_key": False}, "headers": manage},
        ),
        ("tenant delete", "DELETE", f"/manage/tenants/{TENANT}", {"headers": manage}),
        ("datasets", "GET", f"/manage/tenants/{TENANT}/datasets", {"headers": manage}),
        ("dataset get", "GET", f"/manage/tenants/{TENANT}/datasets/visits", {"headers": manage}),
        (
            "dataset put",
            "PUT",
            f"/manage/tenants/{TENANT}/datasets/more",
            {"json": DATASETS["visits"], "headers": manage},
        ),
        ("dataset delete", "DELETE", f"/manage/tenants/{TENANT}/datasets/visits", {"headers": manage}),
        ("sequence get", "GET", f"/manage/tenants/{TENANT}/sequences/invoice", {"headers": manage}),
        (
            "sequence put",
            "PUT",
            f"/manage/tenants/{TENANT}/sequences/other",
            {"json": {"format": "{SEQNUM:4}"}, "headers": manage},
        ),
        ("sequence delete", "DELETE", f"/manage/tenants/{TENANT}/sequences/invoice", {"headers": manage}),
    ]


def test_storage_stopped_under_load_is_503_everywhere_loses_nothing_and_recovers_without_restart(tmp_path, browser):
    # No registry cache: every request meets storage, so every route shows how it answers an outage.
    with stack(tmp_path, registry_cache_ttl_seconds="0") as current:
        with clients_running(current, tolerate_drops=False) as outcomes:
            current.stop_storage()
            # Down until every kind of client has met the outage.
            assert wait_for(lambda: outcomes.kinds_with(503) == {"pixel", "form", "geologin"}, 60), outcomes.statuses

            with current.client() as client:
                answer, _ = pixel_hit(client)
                assert answer.status_code == 503 and answer.content.startswith(GIF_MAGIC)
                assert answer.headers["content-type"] == "image/gif" and answer.headers["retry-after"].isdigit()
                snippet = client.get("/px/snippet.js", params={"tenant": TENANT, "dataset": "visits"})
                assert snippet.status_code == 503 and snippet.headers["retry-after"].isdigit()
                assert snippet.headers["cache-control"] == "no-store"  # the do-nothing script is not kept
                assert client.get("/forms/snippet.js").status_code == 200  # a static script needs no storage
                assert shown_as_image(browser, f"{current.api}/px/{TENANT}/visits?visitor=v1") == 1
                for name, method, path, options in every_endpoint(current.key):
                    answer = client.request(method, path, **options)
                    assert answer.status_code == 503, (name, answer.status_code, answer.text)
                    assert answer.headers["retry-after"].isdigit(), name
                    assert answer.json()["error"] == "storage_unavailable", name
                # A reader's notice in a browser: a page that says so, with Retry-After, never cached.
                notice = client.get(f"/notice/{TENANT}/visits")
                assert notice.status_code == 503 and notice.headers["content-type"].startswith("text/html")
                assert notice.headers["retry-after"].isdigit() and notice.headers["cache-control"] == "no-store"

            current.start_storage()
            with current.client() as client:
                assert wait_for(lambda: pixel_hit(client)[0].status_code == 200, 60)
                # Served again by the same host process, every route: nothing was deleted while storage was away.
                for name, method, path, options in every_endpoint(current.key):
                    if method != "DELETE":
                        answer = client.request(method, path, **options)
                        assert answer.is_success, (name, answer.status_code, answer.text)
                        if name == "forms":
                            swept_form = answer.json()["id"]

        assert current.host.poll() is None  # the host was never restarted  # type: ignore[attr-defined]
        assert not outcomes.failures  # the host answered every request, none was dropped
        assert {status for _, status in outcomes.statuses} <= {200, 201, 409, 503}
        assert_every_stored_answer_is_stored(current.azurite, outcomes)
        # Every form was retried with its key until stored: exactly one record per submission, none extra.
        forms = stored_records(current.azurite, "contact")
        assert sorted(record.id for record in forms) == sorted([*outcomes.form_ids, swept_form])
        # No idempotency marker points at a record that is not there.
        markers = all_blobs(current.azurite, "state", f"{TENANT}/datasets/contact/idem/")
        assert {json.loads(body)["record"] for body in markers.values()} == set(outcomes.form_ids)


def test_a_host_killed_during_captures_lost_no_capture_it_had_answered(tmp_path):
    with stack(tmp_path) as current:
        with clients_running(current, tolerate_drops=True) as outcomes:
            current.kill_host()
            time.sleep(0.5)
            current.start_host()
        assert {status for _, status in outcomes.statuses} <= {200, 201, 409}
        assert len(outcomes.form_ids) >= 2 and outcomes.pixel_visitors and outcomes.sign_in_ids
        assert_every_stored_answer_is_stored(current.azurite, outcomes)
        # A form interrupted by the kill and retried with its key is stored once.
        forms = stored_records(current.azurite, "contact")
        assert sorted(record.id for record in forms) == sorted(outcomes.form_ids)


STORAGE_TIMEOUT_S = 1
# The documented bound (README, "Storage trouble is a 503, soon") for one storage call of a request:
# three attempts of at most the read timeout, two waits of 0.5 s (+0.2 s jitter). A request that meets slow
# storage makes one such call before it answers; the margin covers a shared machine.
BOUND_S = 3 * STORAGE_TIMEOUT_S + 2 * 0.7
HANG_S = 60  # how long the proxy holds answers back: "never", for these requests


@pytest.mark.parametrize("capability", ["pixel", "form", "geologin", "autonumber"])
def test_slow_storage_is_a_503_within_the_bound_not_a_hang(tmp_path, capability):
    with stack(tmp_path, slow_proxy=True, storage_timeout_seconds=str(STORAGE_TIMEOUT_S)) as current:
        proxy = current.proxy
        assert proxy is not None
        with current.client() as client:
            proxy.delay_s = HANG_S
            started = time.monotonic()
            if capability == "pixel":
                answer, _ = pixel_hit(client)
            elif capability == "form":
                answer = form_post(client)
            elif capability == "geologin":
                answer = sign_in(client, current.key)
            else:
                answer = client.post(
                    f"/autonumber/{TENANT}/invoice/next", headers={"authorization": f"Bearer {current.key}"}
                )
            elapsed = time.monotonic() - started
            proxy.delay_s = 0
            assert answer.status_code == 503 and answer.headers["retry-after"].isdigit()
            # Not a hang: answered long before the proxy would have let storage answer (3x the bound, for
            # a shared machine).
            assert elapsed < 3 * BOUND_S < HANG_S, elapsed
            assert wait_for(lambda: pixel_hit(client)[0].status_code == 200, 30)  # storage fast again: served


def test_the_purge_waits_longer_for_slow_storage_than_a_request_does(azurite):
    from devenv.azurite import connection_string
    from shared.core.errors import StorageUnavailable
    from shared.core.settings import Settings
    from shared.storage.blobs import RECORDS, Storage, tag_query
    from tests.factories import MASTER_KEY

    proxy = SlowProxy(azurite.port)
    try:
        settings = Settings(
            region="eu",
            storage_connection_string=connection_string(proxy.port),
            master_key=MASTER_KEY,
            storage_timeout_seconds=1,
        )
        storage = Storage.from_settings(settings)
        storage.container(RECORDS)  # the containers, while storage is fast
        proxy.delay_s = 2
        nobody = tag_query(tenant="nobody-at-all")
        # A request's timeout: gives up, as the storage boundary says it (storage_errors in shared/storage/blobs.py).
        with pytest.raises(StorageUnavailable):
            list(storage.find_by_tags(RECORDS, nobody))
        # The purge's own, longer timeout (shared.purge.READ_TIMEOUT_S): waits, and gets its answer.
        assert list(storage.find_by_tags(RECORDS, nobody, read_timeout=10)) == []
        assert storage.delete_names(RECORDS, ["nobody-at-all/x/gone.json"], read_timeout=10) == 1
    finally:
        proxy.close()
