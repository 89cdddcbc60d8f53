"""PowerAttachment's mover: MB/s moved from Dynamics 365 into SharePoint through PackCloud vs a raw baseline, and the
peak memory of moving a 100 MB file.

Throughput: the same files (1 KB to 20 MB, about 80 MB) as notes in the fake Dataverse, moved into the same fake
Microsoft Graph (tests/integration/fake_dataverse.py, fake_graph.py; HTTPS, one process) by the mover (listing,
block downloads, Graph uploads, the size and QuickXorHash check, the PATCH that clears each body, its cursor and
markers in Azurite) and by a raw baseline on a plain `requests` session with tokens taken beforehand: the same
block downloads (4 MiB, base64) and the same uploads (simple up to 4 MiB, else a session in 5 MiB chunks), each file
in memory whole, nothing checked, recorded or cleared. Fresh notes each round, alternating, best round of each.

Memory: a new process runs the mover (as `python -m shared.cli attachments` does) on one 100 MB note; its peak RSS
(Linux's VmHWM, reset just before the run) is compared with its RSS when idle, with everything imported and the
services built. The fakes, which hold the file, run in this process.
"""

from __future__ import annotations

import base64
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
from devenv.azurite import start_azurite
from shared.attachments.config import AttachmentJobIn
from shared.attachments.graph import graph_tokens
from shared.core.settings import Settings
from shared.dataverse.client import AppCredentials, TokenSource, make_session
from shared.dataverse.targets import TargetIn
from shared.registry.models import TenantIn
from shared.services import Services
from tests.integration.fake_dataverse import FakeDataverse, fakes
from tests.integration.fake_graph import FakeGraph, start_graph

MIB = 1024 * 1024
BLOCK = 4 * MIB
CHUNK = 5 * MIB
SIZES = [1024, 50 * 1024, 900 * 1024, 3 * MIB, 4 * MIB, 6 * MIB, 9 * MIB + 7, 15 * MIB, 20 * MIB, 20 * MIB]
LARGE_MB = 100
ROUNDS = 2
MIN_RATIO = 0.7
MAX_RSS_GROWTH_MB = 64
SITE = "contoso.sharepoint.com,2c712604-1370-44e7-a1f5-426573fda80a,2d2244c3-251a-49ea-93a8-39e1c3a060fe"
DRIVE = "b!benchAttachments000"
SECRET = "attachments-bench-client-secret-0123456789"
API = "api/data/v9.2/"


def _env(
    azurite_connection: str, org: FakeDataverse, graph: FakeGraph, entra_url: str, secrets: Path
) -> dict[str, str]:
    return {
        "PACKCLOUD_REGION": "eu",
        "PACKCLOUD_STORAGE_CONNECTION_STRING": azurite_connection,
        "PACKCLOUD_MASTER_KEY": "bench-master-key-" + "0" * 32,
        "PACKCLOUD_DYNAMICS_HOST_PATTERNS": org.host,
        "PACKCLOUD_ENTRA_AUTHORITY": entra_url,
        "PACKCLOUD_LOCAL_SECRETS_PATH": str(secrets),
        "PACKCLOUD_GRAPH_URL": graph.url,
    }


def _settings(env: dict[str, str]) -> Settings:
    return Settings(**{name.removeprefix("PACKCLOUD_").lower(): value for name, value in env.items()})


def _connect(services: Services, org: FakeDataverse, graph: FakeGraph) -> tuple[str, AppCredentials]:
    """A tenant with a target and a link-mode job for notes; answers its id and its application's credentials."""
    entra_tenant, client = str(uuid.uuid4()), str(uuid.uuid4())
    org.entra.register(entra_tenant, client, secret=SECRET)
    org.users.add(client)
    graph.grant(client, SITE)
    tenant_id = "bench-" + uuid.uuid4().hex[:8]
    tenant, _ = services.registry.put_tenant(tenant_id, TenantIn())
    target = {"organization_url": org.url, "entra_tenant_id": entra_tenant, "client_id": client}
    services.delivery_targets.put(tenant, TargetIn.model_validate({**target, "client_secret": SECRET}))
    job = {
        "sources": ["notes"],
        "note_tables": ["account"],
        "site_id": SITE,
        "drive_id": DRIVE,
        "mode": "link",
    }
    services.attachment_jobs.put(tenant, AttachmentJobIn.model_validate(job))
    return tenant_id, AppCredentials(org.entra.url, entra_tenant, client, "client_secret", SECRET)


def _raw(
    session: requests.Session, org: FakeDataverse, graph_url: str, tokens: tuple[str, str], ids: list[str]
) -> None:
    """Download each file by blocks and upload it: what moving needs on the wire, and nothing else."""
    dataverse = {"Authorization": f"Bearer {tokens[0]}", "Accept": "application/json"}
    for note_id in ids:
        target = {"annotationid": note_id, "@odata.type": "Microsoft.Dynamics.CRM.annotation"}
        opened = session.post(
            org.url + API + "InitializeAnnotationBlocksDownload", json={"Target": target}, headers=dataverse
        ).json()
        size, token = opened["FileSizeInBytes"], opened["FileContinuationToken"]
        parts = []
        for offset in range(0, size, BLOCK):
            body = {"Offset": offset, "BlockLength": min(BLOCK, size - offset), "FileContinuationToken": token}
            answer = session.post(org.url + API + "DownloadBlock", json=body, headers=dataverse)
            parts.append(base64.b64decode(answer.json()["Data"]))
        answer = graph_upload(session, graph_url, DRIVE, f"raw/{uuid.uuid4()}.bin", b"".join(parts), tokens[1], CHUNK)
        if answer.status_code != 201:
            raise AssertionError("the raw upload did not complete")


def throughput(services: Services, org: FakeDataverse, graph: FakeGraph) -> dict[str, Any]:
    files = [os.urandom(size) for size in SIZES]
    megabytes = sum(SIZES) / MIB
    mover_s, raw_s = [], []
    session = make_session()
    for _ in range(ROUNDS):
        org.reset()
        graph.items.clear()
        tenant_id, credentials = _connect(services, org, graph)
        raw_ids = [org.add_note("account", str(uuid.uuid4()), f"raw {n}.bin", data) for n, data in enumerate(files)]
        tokens = (
            TokenSource(credentials, org.url, session).token(),
            graph_tokens(credentials, graph.url, session).token(),
        )
        started = time.perf_counter()
        _raw(session, org, graph.url, tokens, raw_ids)
        raw_s.append(time.perf_counter() - started)
        for note_id in raw_ids:  # linked already, as far as the mover's listing is concerned
            org.notes[note_id]["isdocument"] = False
        for n, data in enumerate(files):
            org.add_note("account", str(uuid.uuid4()), f"moved {n}.bin", data)
        mover = services.mover()
        mover.run(dry_run=True)  # tokens taken, as the raw baseline's were
        started = time.perf_counter()
        report = mover.run()
        mover_s.append(time.perf_counter() - started)
        outcome = report.tenants[tenant_id]
        if outcome.moved != len(files) or outcome.bytes_moved != sum(SIZES):
            raise AssertionError(f"the mover moved {outcome.moved} of {len(files)} files ({outcome.state})")
        services.forget_attachments(tenant_id)
        services.delivery_targets.delete(tenant_id)
        services.registry.delete_tenant(tenant_id)
    rate, raw_rate = megabytes / min(mover_s), megabytes / min(raw_s)
    return {
        "files": len(SIZES),
        "megabytes": round(megabytes, 1),
        "mb_per_s": round(rate, 1),
        "raw_mb_per_s": round(raw_rate, 1),
        "ratio": round(rate / raw_rate, 3),
    }


def memory(services: Services, org: FakeDataverse, graph: FakeGraph, env: dict[str, str]) -> dict[str, Any]:
    org.reset()
    graph.items.clear()
    tenant_id, _ = _connect(services, org, graph)
    org.add_note("account", str(uuid.uuid4()), "large.bin", os.urandom(LARGE_MB * MIB))
    done = subprocess.run(
        [sys.executable, "-m", "bench.attachments", "--child"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=900,
    )
    if done.returncode != 0:
        raise AssertionError(f"the measured mover failed: {done.stderr[-2000:]}")
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    if measured["moved"] != 1 or measured["bytes_moved"] != LARGE_MB * MIB:
        raise AssertionError(f"the large file was not moved: {measured}")
    services.forget_attachments(tenant_id)
    services.delivery_targets.delete(tenant_id)
    services.registry.delete_tenant(tenant_id)
    return {
        "large_mb": LARGE_MB,
        "idle_rss_mb": measured["idle_mb"],
        "peak_rss_mb": measured["peak_mb"],
        "rss_growth_mb": round(measured["peak_mb"] - measured["idle_mb"], 1),
        "large_mb_per_s": measured["mb_per_s"],
    }


def child() -> None:
    """The measured process: the mover as the command line builds it, on the one large note."""
    from shared.services import get_services

    services = get_services()
    mover = services.attachment_mover
    idle = status_mb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM, the peak, to the current RSS
    started = time.perf_counter()
    report = mover.run()
    elapsed = time.perf_counter() - started
    peak = status_mb("VmHWM")
    (outcome,) = report.tenants.values()
    print(
        json.dumps(
            {
                "idle_mb": round(idle, 1),
                "peak_mb": round(peak, 1),
                "mb_per_s": round(LARGE_MB / elapsed, 1),
                "moved": outcome.moved,
                "bytes_moved": outcome.bytes_moved,
            }
        )
    )


def main() -> dict[str, object]:
    azurite = start_azurite()
    try:
        with tempfile.TemporaryDirectory() as folder, fakes(Path(folder)) as (ca, entra, orgs):
            os.environ["REQUESTS_CA_BUNDLE"] = str(ca.bundle)
            graph, server = start_graph(ca, entra)
            try:
                graph.keep_content = False  # the fake keeps hashes: the files would otherwise stay in this process
                graph.add_drive(SITE, DRIVE)
                org = orgs[0]
                env = _env(azurite.connection_string, org, graph, entra.url, Path(folder) / "secrets.json")
                env["REQUESTS_CA_BUNDLE"] = str(ca.bundle)
                services = Services.build(_settings({k: v for k, v in env.items() if k.startswith("PACKCLOUD_")}))
                results: dict[str, object] = {**throughput(services, org, graph), **memory(services, org, graph, env)}
            finally:
                server.shutdown()
                server.server_close()
    finally:
        azurite.stop()
    results["ratio_target"] = MIN_RATIO
    results["rss_growth_target_mb"] = MAX_RSS_GROWTH_MB
    write_results("attachments", results)
    print(f"attachments: {json.dumps(results)}")
    return results


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child()
    else:
        main()
