"""PowerAttachment's uploads into SharePoint: MB/s through GraphClient vs plain requests, and peak memory.

Throughput: the same files (1 KB to 20 MB, 120 MB in all) uploaded to the same fake Microsoft Graph
(tests/integration/fake_graph.py, HTTPS, hashing what it stores) by GraphClient (simple uploads up to 4 MiB, upload
sessions in 5 MiB chunks read from a `content(offset, length)` callback) and by a raw baseline: a plain
`requests` session sending the same requests (the same PUTs, the same chunks, already in memory, one token taken
beforehand), in alternating rounds; the best round of each. Every upload's QuickXorHash (the fake's, from the C
library) is compared with PackCloud's of the source.

Memory: a new process uploads a 100 MB file read by ranges from disk (as the mover reads an attachment), hashing
it as it goes; its peak RSS (Linux's VmHWM, reset just before the upload) is compared with its RSS when idle,
with everything imported and the client built.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import requests

from bench.common import graph_upload, status_mb, write_results
from shared.attachments.graph import GraphClient, QuickXorHash, graph_tokens, quick_xor_hash
from shared.dataverse.client import AppCredentials, make_session
from tests.integration.fake_graph import FakeGraph, graph_fakes

MIB = 1024 * 1024
CHUNK = 5 * MIB
SIZES = [1024, 50 * 1024, 900 * 1024, 3 * MIB, 4 * MIB, 6 * MIB, 9 * MIB + 7, 15 * MIB, 20 * MIB, 20 * MIB, 40 * MIB]
LARGE_MB = 100
ROUNDS = 3
MIN_RATIO = 0.7
MAX_RSS_GROWTH_MB = 64
SITE = "contoso.sharepoint.com,2c1b8a0e-9f3e-4a55-8d2b-0a6f1c7d9e11,7d6f4c1a-3b2e-4f5d-9c8b-1a2b3c4d5e6f"
DRIVE = "b!benchDrive0000"
SECRET = "graph-bench-client-secret-0123456789"


def _register(graph: FakeGraph) -> AppCredentials:
    tenant, client_id = str(uuid.uuid4()), str(uuid.uuid4())
    graph.entra.register(tenant, client_id, secret=SECRET)
    graph.grant(client_id, SITE)
    return AppCredentials(graph.entra.url, tenant, client_id, "client_secret", SECRET)


def _through_client(client: GraphClient, files: list[bytes]) -> list[str | None]:
    hashes = []
    for data in files:
        item = client.upload(DRIVE, f"bench/{uuid.uuid4()}.bin", lambda o, n, d=data: d[o : o + n], len(data))
        hashes.append(item.quick_xor_hash)
    return hashes


def _raw(session: requests.Session, base: str, token: str, files: list[bytes]) -> list[str | None]:
    """What the uploads need on the wire, and nothing else: no checks, no retries, bytes already in memory."""
    answers = [graph_upload(session, base, DRIVE, f"bench/{uuid.uuid4()}.bin", data, token, CHUNK) for data in files]
    return [answer.json()["file"]["hashes"]["quickXorHash"] for answer in answers]


def throughput(graph: FakeGraph) -> dict[str, Any]:
    files = [os.urandom(size) for size in SIZES]
    expected = [quick_xor_hash([data]) for data in files]
    megabytes = sum(SIZES) / MIB
    session = make_session()
    tokens = graph_tokens(_register(graph), graph.url, session)
    client = GraphClient(session, graph.url, tokens, chunk_size=CHUNK)
    raw_session = make_session()
    client_s, raw_s = [], []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        raw_hashes = _raw(raw_session, graph.url, tokens.token(), files)
        raw_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        client_hashes = _through_client(client, files)
        client_s.append(time.perf_counter() - started)
        if raw_hashes != expected or client_hashes != expected:
            raise AssertionError("an upload's QuickXorHash differs from the source's")
        graph.items.clear()
    rate, raw_rate = megabytes / min(client_s), megabytes / min(raw_s)
    return {
        "files": len(SIZES),
        "megabytes": round(megabytes, 1),
        "mb_per_s": round(rate, 1),
        "raw_mb_per_s": round(raw_rate, 1),
        "ratio": round(rate / raw_rate, 3),
        "requests_per_round": client.requests // ROUNDS,
    }


def memory(graph: FakeGraph, bundle: str) -> dict[str, Any]:
    credentials = _register(graph)
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "large.bin"
        hasher = QuickXorHash()
        with source.open("wb") as out:
            for _ in range(LARGE_MB):
                block = os.urandom(MIB)
                hasher.update(block)
                out.write(block)
        job = {
            "url": graph.url,
            "source": str(source),
            "credentials": [credentials.authority, credentials.entra_tenant_id, credentials.client_id, SECRET],
        }
        env = {**os.environ, "REQUESTS_CA_BUNDLE": bundle}
        done = subprocess.run(
            [sys.executable, "-m", "bench.graph_upload", "--child", json.dumps(job)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        )
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    if measured["hash"] != hasher.b64digest() or measured["item_hash"] != measured["hash"]:
        raise AssertionError("the large file's hash differs")
    return {
        "large_mb": LARGE_MB,
        "idle_rss_mb": measured["idle_mb"],
        "peak_rss_mb": measured["peak_mb"],
        "rss_growth_mb": round(measured["peak_mb"] - measured["idle_mb"], 1),
        "large_mb_per_s": measured["mb_per_s"],
    }


def child(job: dict[str, Any]) -> None:
    """The measured process: upload one large file from disk by ranges, hashing what it reads."""
    authority, tenant, client_id, secret = job["credentials"]
    session = make_session()
    tokens = graph_tokens(AppCredentials(authority, tenant, client_id, "client_secret", secret), job["url"], session)
    client = GraphClient(session, job["url"], tokens, chunk_size=CHUNK)
    tokens.token()
    size = os.path.getsize(job["source"])
    hasher = QuickXorHash()
    with open(job["source"], "rb") as source:
        fd = source.fileno()

        def content(offset: int, length: int) -> bytes:
            data = os.pread(fd, length, offset)
            hasher.update(data)
            return data

        idle = status_mb("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM, the peak, to the current RSS
        started = time.perf_counter()
        item = client.upload(DRIVE, f"bench/large-{uuid.uuid4()}.bin", content, size)
        elapsed = time.perf_counter() - started
    peak = status_mb("VmHWM")
    print(
        json.dumps(
            {
                "idle_mb": round(idle, 1),
                "peak_mb": round(peak, 1),
                "mb_per_s": round(size / MIB / elapsed, 1),
                "hash": hasher.b64digest(),
                "item_hash": item.quick_xor_hash,
            }
        )
    )


def main() -> dict[str, object]:
    with tempfile.TemporaryDirectory() as folder, graph_fakes(Path(folder)) as (ca, _, graph):
        os.environ["REQUESTS_CA_BUNDLE"] = str(ca.bundle)
        graph.keep_content = False  # the fake keeps hashes: 120 MB a round would otherwise stay in this process
        graph.add_drive(SITE, DRIVE)
        results: dict[str, object] = {**throughput(graph), **memory(graph, str(ca.bundle))}
    results["ratio_target"] = MIN_RATIO
    results["rss_growth_target_mb"] = MAX_RSS_GROWTH_MB
    write_results("graph_upload", results)
    print(f"graph_upload: {json.dumps(results)}")
    return results


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(json.loads(sys.argv[2]))
    else:
        main()
