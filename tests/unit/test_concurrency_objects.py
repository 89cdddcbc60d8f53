"""Shared objects of the hot path under threads, without storage: the form rate limiter, the devhost's thread pool
size, and the storage request kinds the cost model prices. (Against one host: tests/integration/test_concurrency.py.)"""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from devhost.server import WORKER_THREADS, worker_threads
from shared.core.clock import ManualClock
from shared.storage.blobs import request_kind
from shared.webform.rate_limit import RateLimiter


def test_the_rate_limiter_admits_exactly_its_limit_to_32_threads_at_once():
    limiter = RateLimiter(per_minute=50, clock=ManualClock(datetime(2026, 11, 27, 9, 0, tzinfo=UTC)))
    admitted: list[int] = []
    barrier = threading.Barrier(32)

    def client() -> None:
        barrier.wait()
        mine = sum(limiter.take("203.0.113.9") is None for _ in range(10))
        admitted.append(mine)

    threads = [threading.Thread(target=client) for _ in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(admitted) == 50  # the clock stands still: no refill, so exactly the bucket


def test_the_worker_thread_count_is_read_as_the_azure_python_worker_reads_it():
    assert worker_threads({}) == WORKER_THREADS
    assert worker_threads({"PYTHON_THREADPOOL_THREAD_COUNT": "8"}) == 8
    for wrong in ("0", "33", "eight", "-1"):
        with pytest.raises(ValueError, match="PYTHON_THREADPOOL_THREAD_COUNT"):
            worker_threads({"PYTHON_THREADPOOL_THREAD_COUNT": wrong})


@pytest.mark.parametrize(
    ("method", "query", "kind"),
    [
        ("PUT", "", "write"),  # Put Blob
        ("PUT", "?comp=blocklist", "write"),
        ("PUT", "?comp=appendblock", "write"),
        ("PUT", "?comp=tags", "other"),
        ("PUT", "?restype=container", "list"),  # Create Container is billed with the lists
        ("GET", "", "read"),  # Get Blob
        ("GET", "?restype=container&comp=list&prefix=a", "list"),
        ("GET", "?comp=blobs&where=x", "tag_query"),  # Find Blobs by Tags
        ("HEAD", "", "other"),
        ("DELETE", "", "delete"),
        ("POST", "?comp=batch", "batch"),
    ],
)
def test_storage_requests_are_sorted_into_the_kinds_the_price_list_bills(method, query, kind):
    assert request_kind(method, f"https://acct.blob.core.windows.net/records/t/d/x.json{query}") == kind
