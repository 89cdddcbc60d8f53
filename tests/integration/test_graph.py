"""The real GraphClient against the fake Microsoft Graph (tests/integration/fake_graph.py) over HTTPS.

Uploads arrive byte-identical with the hash Graph (here: the `quickxorhash` C library) computes; chunks follow
Graph's rules and the content callback is asked for ranges no bigger than one chunk; an expired session starts
over; a taken name gives back the existing item; 429/503 are waited out within the budget, or handed back.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from shared.attachments.graph import (
    DriveItem,
    GraphClient,
    GraphRefused,
    GraphThrottled,
    graph_tokens,
    quick_xor_hash,
)
from shared.core.logs import quiet_request_logs
from shared.dataverse.client import AppCredentials, make_session
from tests.integration.fake_dataverse import FakeEntra
from tests.integration.fake_graph import FRAGMENT_UNIT, FakeGraph, graph_fakes

KIB, MIB = 1024, 1024 * 1024
SITE = "contoso.sharepoint.com,2c1b8a0e-9f3e-4a55-8d2b-0a6f1c7d9e11,7d6f4c1a-3b2e-4f5d-9c8b-1a2b3c4d5e6f"
DRIVE = "b!Lg7YcP3kXk2nA1Zq9wR8sT6uV4xY2zA0bC1dE3fG5hI7jK9lM1nO3pQ5rS7tU9v"
OTHER_SITE = "contoso.sharepoint.com,11111111-2222-3333-4444-555555555555,66666666-7777-8888-9999-000000000000"
OTHER_DRIVE = "b!Other0000drive1111"
SECRET = "graph-test-client-secret-0123456789"


@dataclass
class World:
    entra: FakeEntra
    graph: FakeGraph
    bundle: str


@dataclass
class Source:
    """A file the client reads by ranges, as the mover reads an attachment: each range asked is recorded."""

    data: bytes
    asked: list[tuple[int, int]] = field(default_factory=list)

    def __call__(self, offset: int, length: int) -> bytes:
        self.asked.append((offset, length))
        return self.data[offset : offset + length]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Iterator[World]:
    with graph_fakes(tmp_path_factory.mktemp("graph")) as (ca, entra, graph):
        graph.add_drive(SITE, DRIVE)
        graph.add_drive(OTHER_SITE, OTHER_DRIVE)
        yield World(entra, graph, str(ca.bundle))


@dataclass
class Connected:
    client: GraphClient
    waits: list[float]


@pytest.fixture
def connect(world, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", world.bundle)
    world.graph.reset()

    def make(*, chunk_size: int = 5 * MIB, max_wait_s: float = 30.0, granted: bool = True) -> Connected:
        tenant, client_id = str(uuid.uuid4()), str(uuid.uuid4())
        world.entra.register(tenant, client_id, secret=SECRET)
        if granted:
            world.graph.grant(client_id, SITE)
        session = make_session()
        credentials = AppCredentials(world.entra.url, tenant, client_id, "client_secret", SECRET)
        waits: list[float] = []
        client = GraphClient(
            session,
            world.graph.url,
            graph_tokens(credentials, world.graph.url, session),
            chunk_size=chunk_size,
            max_wait_s=max_wait_s,
            sleep=waits.append,
        )
        return Connected(client, waits)

    return make


def random_bytes(size: int, seed: int = 0) -> bytes:
    return random.Random(seed * 7919 + size).randbytes(size)


def assert_arrived(graph: FakeGraph, item: DriveItem, path: str, data: bytes) -> None:
    stored = graph.item(DRIVE, path)
    assert stored is not None and stored.id == item.id
    assert stored.data == data
    assert item.size == len(data)
    # Graph's hash (the fake's, from an independent implementation) is the one PackCloud computes of the source.
    assert item.quick_xor_hash == stored.quick_xor_hash == quick_xor_hash([data])


def assert_bounded_ranges(source: Source, chunk_size: int) -> None:
    assert source.asked, "the content was never read"
    assert max(length for _, length in source.asked) <= chunk_size


# ------------------------------------------------------------------------------------------------ the drive


def test_check_drive_needs_the_site_grant_and_an_existing_drive(connect):
    connect().client.check_drive(SITE, DRIVE)
    with pytest.raises(GraphRefused) as denied:
        connect(granted=False).client.check_drive(SITE, DRIVE)
    assert (denied.value.status, denied.value.code, denied.value.transient) == (403, "accessDenied", False)
    with pytest.raises(GraphRefused) as missing:
        connect().client.check_drive(SITE, OTHER_DRIVE)
    assert (missing.value.status, missing.value.code) == (404, "itemNotFound")


def test_find_item_by_path(connect, world):
    client = connect().client
    assert client.find_item(DRIVE, "lead/0001/attachment-a1.pdf") is None
    stored = world.graph.put(DRIVE, "lead/0001/attachment-a1.pdf", b"%PDF-1.7 already there")
    found = client.find_item(DRIVE, "LEAD/0001/Attachment-A1.pdf")  # SharePoint names ignore case
    assert found is not None and found.web_url.startswith("https://")
    assert (found.id, found.size, found.quick_xor_hash) == (stored.id, 22, stored.quick_xor_hash)


@pytest.mark.parametrize("path", ["", "/lead/a", "lead//a", "lead/../a", "lead/a:b", "lead/a?b", "lead/ a", "x" * 401])
def test_a_path_sharepoint_would_refuse_is_a_value_error_naming_nothing(connect, path):
    with pytest.raises(ValueError, match="a drive path") as caught:
        connect().client.upload(DRIVE, path, Source(b"x"), 1)
    assert not path or path not in str(caught.value)


# ------------------------------------------------------------------------------------------------ uploads


@pytest.mark.parametrize(
    "size",
    [0, 1 * KIB, 100 * KIB, 4 * MIB, 4 * MIB + 1, 5 * MIB, 5 * MIB + 1, 12 * MIB + 333, 20 * MIB],
)
def test_files_from_1_kb_to_20_mb_arrive_byte_identical(connect, world, size):
    connected = connect()
    data = random_bytes(size)
    source = Source(data)
    path = f"email/{uuid.uuid4()}/attachment-{size}.bin"
    item = connected.client.upload(DRIVE, path, source, size)
    assert_arrived(world.graph, item, path, data)
    if size:
        assert_bounded_ranges(source, 5 * MIB)
    simple = size <= 4 * MIB
    assert world.graph.count("PUT", "api") == (1 if simple else 0)
    assert world.graph.count("POST", "api") == (0 if simple else 1)
    assert world.graph.authorized_uploads == 0  # the pre-authenticated upload URL never saw the token
    # Each fragment is a multiple of 320 KiB but the last, and none is sent twice.
    offsets = [offset for offset, _ in world.graph.fragments]
    assert offsets == sorted(set(offsets))
    assert all(length % FRAGMENT_UNIT == 0 for _, length in world.graph.fragments[:-1])


@pytest.mark.parametrize("chunk_size", [FRAGMENT_UNIT, 2 * FRAGMENT_UNIT])
@pytest.mark.parametrize("delta", [-1, 0, 1])
@pytest.mark.parametrize("chunks", [1, 3])
def test_chunk_boundaries(connect, world, chunk_size, delta, chunks):
    connected = connect(chunk_size=chunk_size)
    size = chunks * chunk_size + delta
    data = random_bytes(size, seed=chunks)
    source = Source(data)
    path = f"lead/{uuid.uuid4()}/boundary.bin"
    item = connected.client.upload(DRIVE, path, source, size)
    assert_arrived(world.graph, item, path, data)
    assert_bounded_ranges(source, chunk_size)
    # Whole file read once, in order, in ranges that tile it.
    assert [offset for offset, _ in source.asked] == list(range(0, size, chunk_size))
    assert sum(length for _, length in source.asked) == size
    expected_fragments = 0 if size <= chunk_size else -(-size // chunk_size)
    assert len(world.graph.fragments) == expected_fragments


def test_chunk_size_must_be_a_multiple_of_320_kib(connect, world):
    connected = connect()
    with pytest.raises(ValueError, match="320 KiB"):
        GraphClient(make_session(), world.graph.url, connected.client._tokens, chunk_size=1 * MIB)


def test_an_expired_session_starts_over_in_a_new_one(connect, world):
    connected = connect()
    world.graph.expire_next(after_fragments=2)
    data = random_bytes(20 * MIB, seed=5)
    source = Source(data)
    path = f"lead/{uuid.uuid4()}/expiring.bin"
    item = connected.client.upload(DRIVE, path, source, len(data))
    assert_arrived(world.graph, item, path, data)
    assert world.graph.count("POST", "api") == 2
    assert world.graph.count("PUT", "upload", 404) == 1
    assert_bounded_ranges(source, 5 * MIB)


def test_sessions_that_keep_expiring_end_in_a_refusal(connect, world):
    connected = connect()
    world.graph.expire_next(after_fragments=1, sessions=3)
    data = random_bytes(11 * MIB, seed=6)
    with pytest.raises(GraphRefused) as caught:
        connected.client.upload(DRIVE, "lead/x/always-expiring.bin", Source(data), len(data))
    assert (caught.value.status, caught.value.code) == (404, "uploadSessionNotFound")
    assert world.graph.item(DRIVE, "lead/x/always-expiring.bin") is None


@pytest.mark.parametrize("size", [2 * KIB, 9 * MIB])
def test_a_taken_name_returns_the_existing_item_untouched(connect, world, size):
    connected = connect()
    path = f"lead/{uuid.uuid4()}/attachment-taken.bin"
    earlier = world.graph.put(DRIVE, path, b"uploaded by an earlier run")
    item = connected.client.upload(DRIVE, path, Source(random_bytes(size)), size)
    assert item.id == earlier.id and item.size == len(b"uploaded by an earlier run")
    assert item.quick_xor_hash == quick_xor_hash([b"uploaded by an earlier run"])  # the caller sees it differs
    assert world.graph.item(DRIVE, path).data == b"uploaded by an earlier run"
    assert world.graph.count("GET", "api", 200) == 1  # found after the 409


def test_a_name_taken_while_the_session_runs_returns_that_item(connect, world):
    connected = connect()
    path = f"lead/{uuid.uuid4()}/raced.bin"
    data = random_bytes(7 * MIB, seed=8)

    def content(offset: int, length: int) -> bytes:
        if offset + length == len(data):  # someone else's upload completes first
            world.graph.put(DRIVE, path, b"the other one")
        return data[offset : offset + length]

    item = connected.client.upload(DRIVE, path, content, len(data))
    assert item.size == len(b"the other one")
    assert world.graph.count("PUT", "upload", 409) == 1


# ------------------------------------------------------------------------------------------------ throttling


def test_throttling_is_waited_out_for_its_retry_after(connect, world):
    connected = connect()
    world.graph.fail_next(429, kind="api", retry_after="2")
    world.graph.fail_next(503, kind="upload", retry_after="3")
    world.graph.fail_next(429, kind="upload", retry_after="Wed, 21 Oct 2015 07:28:00 GMT")  # a date in the past
    data = random_bytes(11 * MIB, seed=9)
    path = f"lead/{uuid.uuid4()}/throttled.bin"
    item = connected.client.upload(DRIVE, path, Source(data), len(data))
    assert_arrived(world.graph, item, path, data)
    assert connected.waits == [2.0, 3.0, 0.0]
    assert world.graph.count("POST", "api", 429) == 1 and world.graph.count("PUT", "upload", 503) == 1


def test_a_503_without_retry_after_backs_off(connect, world):
    connected = connect()
    world.graph.fail_next(503, count=2, kind="api")
    path = f"lead/{uuid.uuid4()}/small.bin"
    item = connected.client.upload(DRIVE, path, Source(b"abc"), 3)
    assert_arrived(world.graph, item, path, b"abc")
    assert connected.waits == [1.0, 2.0]


def test_a_wait_longer_than_allowed_is_handed_back(connect, world):
    connected = connect(max_wait_s=30)
    world.graph.fail_next(429, kind="api", retry_after="120")
    with pytest.raises(GraphThrottled) as caught:
        connected.client.upload(DRIVE, "lead/x/later.bin", Source(b"abc"), 3)
    assert caught.value.retry_after == 120 and connected.waits == []


def test_waits_add_up_to_the_budget_in_all(connect, world):
    connected = connect(max_wait_s=30)
    world.graph.fail_next(429, count=4, kind="api", retry_after="10")
    with pytest.raises(GraphThrottled) as caught:
        connected.client.find_item(DRIVE, "lead/x/a.bin")
    assert connected.waits == [10.0, 10.0, 10.0] and caught.value.retry_after == 10


# ------------------------------------------------------------------------------------------------ tokens, errors, logs


def test_an_expired_token_is_renewed_once(connect, world):
    connected = connect()
    assert connected.client.find_item(DRIVE, "lead/x/none.bin") is None
    world.entra.expire_all()
    assert connected.client.find_item(DRIVE, "lead/x/none.bin") is None
    assert world.graph.count("GET", "api", 401) == 1


def test_server_errors_are_transient_refusals_with_graph_code(connect, world):
    connected = connect()
    world.graph.fail_next(500, count=3, kind="api")
    with pytest.raises(GraphRefused) as caught:
        connected.client.find_item(DRIVE, "lead/x/a.bin")
    assert caught.value.transient and caught.value.status == 500 and caught.value.code == "generalException"


def test_a_fragment_lost_to_a_server_error_is_resumed_from_the_session_state(connect, world):
    connected = connect()
    world.graph.fail_next(502, kind="upload")
    data = random_bytes(6 * MIB, seed=11)
    path = f"lead/{uuid.uuid4()}/resumed.bin"
    item = connected.client.upload(DRIVE, path, Source(data), len(data))
    assert_arrived(world.graph, item, path, data)
    assert world.graph.count("GET", "upload", 200) == 1


def test_no_file_name_or_content_in_logs_or_errors(connect, world, caplog):
    quiet_request_logs()  # as function_app does at start-up
    caplog.set_level(logging.DEBUG)
    connected = connect()
    name = "Payslip-Bartholomew-Secret.pdf"
    content = b"CONTENT-MARKER-" * 400_000  # 6 MB: an upload session
    world.graph.fail_next(429, kind="upload", retry_after="1")
    world.graph.expire_next(after_fragments=1)
    item = connected.client.upload(DRIVE, f"lead/rec-zebra/{name}", Source(content), len(content))
    assert item.size == len(content)
    with pytest.raises(GraphRefused) as refused:
        connect(granted=False).client.upload(DRIVE, f"lead/rec-zebra/{name}", Source(content), len(content))
    logged = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert "graph throttled" in logged and "session expired" in logged  # the log was really read
    for text in (logged, str(refused.value), repr(refused.value)):
        assert "Payslip" not in text and "CONTENT-MARKER" not in text and "zebra" not in text


def test_no_answer_at_all_is_a_transient_refusal(connect, world):
    connected = connect()
    # The same application and token, for a Graph that is not listening (nothing serves port 1).
    client = GraphClient(
        make_session(), "https://127.0.0.1:1/v1.0", connected.client._tokens, sleep=connected.waits.append
    )
    with pytest.raises(GraphRefused) as caught:
        client.find_item(DRIVE, "lead/x/a.bin")
    assert (caught.value.status, caught.value.code, caught.value.transient) == (0, "connection_failed", True)
    assert connected.waits == [1.0, 2.0] and client.requests == 3


@pytest.mark.parametrize(("size", "kind"), [(3 * KIB, "api"), (12 * MIB, "upload")])
def test_an_answer_lost_after_the_bytes_arrived_sends_nothing_twice(connect, world, size, kind):
    connected = connect()
    world.graph.fail_next(502, kind=kind, applied=True)
    data = random_bytes(size, seed=12)
    source = Source(data)
    path = f"lead/{uuid.uuid4()}/lost-answer.bin"
    item = connected.client.upload(DRIVE, path, source, size)
    assert_arrived(world.graph, item, path, data)
    if kind == "api":  # the simple upload is sent again, finds its own item there (409) and returns it
        assert world.graph.count("PUT", "api", 409) == 1
    else:  # the session is asked what it misses: the fragment is not sent again
        assert world.graph.count("GET", "upload", 200) == 1
        assert [offset for offset, _ in world.graph.fragments] == [0, 5 * MIB, 10 * MIB]
