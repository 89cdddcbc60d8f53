"""PowerAttachment end to end: real Azurite; the real GraphClient, DataverseClient and azure-identity against the fake
Entra ID and Dataverse (notes, e-mail attachments: tests/integration/fake_dataverse.py) and the fake Microsoft Graph
(tests/integration/fake_graph.py), over HTTPS with a test CA; the command line in a subprocess for the SIGKILL; the
manage routes through the local host."""

from __future__ import annotations

import base64
import logging
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared.attachments.config import AttachmentJobIn
from shared.attachments.mover import item_path
from shared.attachments.sources import LINK_LINE, LINK_MIME, Attachment, shortcut
from shared.attachments.status import job_status
from shared.core.clock import ManualClock
from shared.core.logs import quiet_request_logs
from shared.dataverse.targets import TargetIn
from shared.lifecycle.report import processing_record
from shared.lifecycle.report_page import render_html
from shared.registry.models import Tenant, TenantIn
from shared.services import Services
from shared.storage.blobs import CONTAINERS
from tests.factories import CLIENT_SECRET, ROOT, all_blobs, settings_env, target_body
from tests.integration.fake_dataverse import FakeDataverse, FakeEntra, TrustedCA, fakes
from tests.integration.fake_graph import FakeGraph, start_graph

SITE = "contoso.sharepoint.com,2c712604-1370-44e7-a1f5-426573fda80a,2d2244c3-251a-49ea-93a8-39e1c3a060fe"
DRIVE = "b!AttachmentsLibrary0123456789"
KB, MB = 1024, 1024 * 1024


@dataclass
class World:
    ca: TrustedCA
    entra: FakeEntra
    orgs: list[FakeDataverse]
    graph: FakeGraph


@dataclass
class File:
    source: str
    id: str
    table: str
    record: str
    name: str
    data: bytes

    @property
    def entity_set(self) -> str:
        return "annotations" if self.source == "notes" else "activitymimeattachments"


@dataclass
class Connected:
    tenant: Tenant
    client_id: str
    org: FakeDataverse


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Iterator[World]:
    with fakes(tmp_path_factory.mktemp("attachments"), organisations=2) as (ca, entra, orgs):
        graph, server = start_graph(ca, entra)
        graph.add_drive(SITE, DRIVE)
        try:
            yield World(ca, entra, orgs, graph)
        finally:
            server.shutdown()
            server.server_close()


@pytest.fixture
def clock():
    return ManualClock(datetime.now(UTC).replace(microsecond=0))


def world_settings(settings, world: World, secrets: Path):
    return settings.model_copy(
        update={
            "dynamics_host_patterns": tuple(org.host for org in world.orgs),
            "entra_authority": world.entra.url,
            "local_secrets_path": secrets,
            "graph_url": world.graph.url,
        }
    )


@pytest.fixture
def mv(settings, clock, world, monkeypatch, tmp_path) -> Iterator[Services]:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(world.ca.bundle))
    for org in world.orgs:
        org.reset()
    world.graph.reset()
    services = Services.build(world_settings(settings, world, tmp_path / "secrets.json"), clock)
    yield services
    # Every run moves every job of the account: none outlives its test.
    for tenant in services.attachment_jobs.all():
        services.forget_attachments(tenant)
    for target in services.delivery_targets.all():
        services.delivery_targets.delete(target.tenant)
        services.registry.delete_tenant(target.tenant)


def connect(services: Services, world: World, org: FakeDataverse, tenant_id: str, **job: object) -> Connected:
    entra_tenant, client = str(uuid.uuid4()), str(uuid.uuid4())
    world.entra.register(entra_tenant, client, secret=CLIENT_SECRET)
    org.users.add(client)
    world.graph.grant(client, SITE)
    tenant, _ = services.registry.put_tenant(tenant_id, TenantIn())
    services.delivery_targets.put(tenant, TargetIn.model_validate(target_body(org.url, entra_tenant, client)))
    body = {
        "sources": ["notes", "email"],
        "note_tables": ["account", "incident"],
        "site_id": SITE,
        "drive_id": DRIVE,
        "mode": "link",
        **job,
    }
    services.attachment_jobs.put(tenant, AttachmentJobIn.model_validate(body))
    return Connected(tenant, client, org)


def sizes(count: int, smallest: int, largest: int) -> list[int]:
    """From smallest to largest, evenly on a log scale."""
    return [round(smallest * (largest / smallest) ** (i / (count - 1))) for i in range(count)]


def seed(org: FakeDataverse, file_sizes: list[int]) -> list[File]:
    """Every other file a note (on two tables), the others e-mail attachments; names that only the file has."""
    files = []
    for n, size in enumerate(file_sizes):
        data = os.urandom(size)
        name = f"Jane Roe medical report {uuid.uuid4().hex[:10]}.pdf"
        record = str(uuid.uuid4())
        if n % 2 == 0:
            table = ("account", "incident")[n % 4 // 2]
            files.append(File("notes", org.add_note(table, record, name, data), table, record, name, data))
        else:
            files.append(File("email", org.add_mime_attachment(record, name, data), "email", record, name, data))
    return files


def path_of(services: Services, tenant: Tenant, f: File) -> str:
    job = services.attachment_jobs.get(tenant)
    assert job is not None
    return item_path(job, Attachment(f.source, f.id, f.table, f.record, len(f.data), 0, "*", f.name))  # type: ignore[arg-type]


def leaks(azurite, files: list[File]) -> list[str]:
    """Every blob of every container, by name and content: any file name, or any piece of any file's bytes (raw or
    base64) found there."""
    needles = []
    for f in files:
        needles += [f.name.encode(), f.name.rsplit(" ", 1)[-1].encode(), f.id.encode() + b" Jane"]
        for start in {0, len(f.data) // 2, max(0, len(f.data) - 48)}:
            piece = f.data[start : start + 48]
            needles += [piece, base64.b64encode(f.data[start - start % 3 : start - start % 3 + 48])]
    found = []
    for container in CONTAINERS:
        for name, content in all_blobs(azurite, container).items():
            found += [f"{container}/{name}" for needle in needles if needle in name.encode() or needle in content]
    return found


def moved_ok(world: World, services: Services, tenant: Tenant, files: list[File]) -> None:
    for f in files:
        item = world.graph.item(DRIVE, path_of(services, tenant, f))
        assert item is not None, f"{f.source} {f.id} is not in SharePoint"
        assert item.data == f.data


def cleared(org: FakeDataverse, f: File) -> bool:
    rows = org.notes if f.source == "notes" else org.mime_attachments
    return org.file_bytes(f.entity_set, f.id) is None if f.source == "notes" else rows[f.id]["mimetype"] == LINK_MIME


def uploads(graph: FakeGraph) -> int:
    """Items Graph created: simple uploads and completed upload sessions."""
    return graph.count("PUT", "api", 201) + graph.count("PUT", "upload", 201)


# ---------------------------------------------------------------------------------------------------- the move


def test_fifty_files_move_byte_for_byte_and_each_body_is_cleared_only_after_its_copy_is_checked(
    mv, world, azurite, tenant_id, caplog
):
    quiet_request_logs()
    caplog.set_level(logging.DEBUG)
    org = world.orgs[0]
    connected = connect(mv, world, org, tenant_id)
    files = seed(org, sizes(50, 1 * KB, 20 * MB))
    by_id = {f.id: f for f in files}
    early, found_in_storage = [], []

    def before_patch(entity_set: str, row_id: str, values: dict) -> None:
        f = by_id[row_id]
        item = world.graph.item(DRIVE, path_of(mv, connected.tenant, f))
        if item is None or item.data != f.data:
            early.append(row_id)  # Dynamics 365 would lose a file whose copy is not (yet) right
        if len(org.patches) % 10 == 0:
            found_in_storage.extend(leaks(azurite, files))  # during the run, not only after it

    org.before_patch = before_patch
    report = mv.mover().run()

    outcome = report.tenants[tenant_id]
    assert (outcome.state, outcome.moved, outcome.failed) == ("ok", 50, 0)
    assert outcome.bytes_moved == sum(len(f.data) for f in files)
    assert early == [] and found_in_storage == []
    moved_ok(world, mv, connected.tenant, files)
    assert uploads(world.graph) == 50
    for f in files:
        assert cleared(org, f)
        if f.source == "notes":
            url = world.graph.drive_item(world.graph.item(DRIVE, path_of(mv, connected.tenant, f)))["webUrl"]
            assert org.notes[f.id]["notetext"] == LINK_LINE + url and org.notes[f.id]["isdocument"] is False
        else:
            row = org.mime_attachments[f.id]
            url = world.graph.drive_item(world.graph.item(DRIVE, path_of(mv, connected.tenant, f)))["webUrl"]
            assert base64.b64decode(row["body"]) == shortcut(url)
            assert row["filename"] == f.name + ".url"
    assert Counter(row_id for _, row_id, _ in org.patches) == Counter(list(by_id))  # each file changed once
    assert leaks(azurite, files) == []
    assert all_blobs(azurite, "state", f"{tenant_id}/attachments/") == {}  # no marker outlives its file
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert not [f.id for f in files if f.name in text or f.name.rsplit(" ", 1)[-1] in text]
    pieces = [(f.data[:12].hex(), base64.b64encode(f.data[:12]).decode(), repr(f.data[:12])[2:-1]) for f in files]
    assert not [piece for piece in pieces if any(form in text for form in piece)]
    assert sum(record.name == "packcloud.attachments" for record in caplog.records) >= 50  # the scan read lines

    (entry,) = [
        e for e in mv.audit.entries(tenant_id, since=mv.clock.now() - timedelta(hours=1)) if e["kind"] == "attachments"
    ]
    assert (entry["moved"], entry["failed"], entry["bytes_moved"]) == (50, 0, outcome.bytes_moved)

    again = mv.mover().run()  # nothing new: nothing read, nothing uploaded
    assert again.tenants[tenant_id].listed == 0 and uploads(world.graph) == 50


def test_copy_mode_keeps_the_files_and_records_the_link_of_notes(mv, world, tenant_id):
    org = world.orgs[0]
    connected = connect(mv, world, org, tenant_id, mode="copy")
    files = seed(org, [2 * KB, 3 * KB, 5 * MB, 6 * KB])
    report = mv.mover().run()
    assert report.tenants[tenant_id].moved == 4
    moved_ok(world, mv, connected.tenant, files)
    for f in files:
        assert org.file_bytes(f.entity_set, f.id) == f.data
    notes = [f for f in files if f.source == "notes"]
    assert all(org.notes[f.id]["notetext"].startswith(LINK_LINE + "https://") for f in notes)
    assert {entity_set for entity_set, _, _ in org.patches} == {"annotations"}
    # The notes come back once (the link raised their version) and are skipped unread; the e-mail attachments stay
    # as they are, and the cursor keeps them from moving again.
    again = mv.mover().run().tenants[tenant_id]
    assert (again.listed, again.already_linked, again.moved) == (len(notes), len(notes), 0)
    assert mv.mover().run().tenants[tenant_id].listed == 0
    assert uploads(world.graph) == 4

    # Turned to link mode: everything is listed again, nothing uploaded again, each copy checked, then the files go.
    job = mv.attachment_jobs.get(connected.tenant)
    mv.attachment_jobs.put(
        connected.tenant,
        AttachmentJobIn.model_validate({**job.model_dump(include=set(AttachmentJobIn.model_fields)), "mode": "link"}),
    )
    report = mv.mover().run().tenants[tenant_id]
    assert (report.moved, report.already_there, uploads(world.graph)) == (4, 4, 4)
    assert all(cleared(org, f) for f in files)
    assert all(org.notes[f.id]["notetext"].count(LINK_LINE) == 1 for f in notes)


def test_a_mover_killed_midway_is_finished_by_the_next_run_with_each_file_moved_once(
    mv, world, azurite, tenant_id, tmp_path
):
    org = world.orgs[0]
    connected = connect(mv, world, org, tenant_id)
    files = seed(org, sizes(30, 1 * KB, 6 * MB))
    env = {
        **os.environ,
        **settings_env(azurite),
        "PACKCLOUD_DYNAMICS_HOST_PATTERNS": ",".join(o.host for o in world.orgs),
        "PACKCLOUD_ENTRA_AUTHORITY": world.entra.url,
        "PACKCLOUD_LOCAL_SECRETS_PATH": str(tmp_path / "secrets.json"),
        "PACKCLOUD_GRAPH_URL": world.graph.url,
        "REQUESTS_CA_BUNDLE": str(world.ca.bundle),
    }
    command = [sys.executable, "-m", "shared.cli", "attachments"]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    killed = threading.Event()
    kept_at_kill: list[str] = []

    def before_patch(entity_set: str, row_id: str, values: dict) -> bool:
        if len(org.patches) < 12:
            return True
        # Killed with a copy uploaded and verified, its link not yet recorded: this change never arrives.
        process.send_signal(signal.SIGKILL)
        killed.set()
        kept_at_kill.append(row_id)
        org.before_patch = None
        return False

    org.before_patch = before_patch
    try:
        process.wait(240)
    finally:
        if process.poll() is None:
            process.kill()
    assert killed.is_set(), "the mover finished before it could be killed"
    assert process.returncode == -signal.SIGKILL
    assert len(org.patches) == 12
    f = next(f for f in files if f.id == kept_at_kill[0])
    assert not cleared(org, f)  # its body is still in Dynamics 365 ...
    assert world.graph.item(DRIVE, path_of(mv, connected.tenant, f)) is not None  # ... and its copy in SharePoint

    again = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, timeout=240, text=True)
    assert again.returncode == 0, again.stderr
    moved_ok(world, mv, connected.tenant, files)
    assert uploads(world.graph) == len(files)  # none uploaded twice ...
    assert len(world.graph.items) == len(files)  # ... nor stored twice
    assert all(cleared(org, f) for f in files)
    assert Counter(row_id for _, row_id, _ in org.patches) == Counter(f.id for f in files)
    assert "already in SharePoint" in again.stderr and f.name not in again.stderr + again.stdout
    assert leaks(azurite, files) == []


# ---------------------------------------------------------------------------------------------------- limits


def test_a_long_429_pauses_only_its_tenant_and_short_ones_are_waited_out(mv, world, tenant_id, clock):
    waits: list[float] = []
    paused = connect(mv, world, world.orgs[0], tenant_id)
    other_id = tenant_id + "-b"
    other = connect(mv, world, world.orgs[1], other_id)
    paused_files = seed(paused.org, [KB, 2 * KB])
    other_files = seed(other.org, [3 * KB, 4 * KB, 5 * MB])
    paused.org.fail_next(429, retry_after=120)
    other.org.fail_next(429, count=2, retry_after=1)

    report = mv.mover(sleep=waits.append).run()
    assert report.tenants[tenant_id].state == "throttled"
    assert report.tenants[other_id].moved == 3
    assert waits.count(1.0) >= 2
    moved_ok(world, mv, other.tenant, other_files)
    status = job_status(mv.attachment_progress, mv.attachment_jobs.get(paused.tenant))
    assert status["paused_until"] == (clock.now() + timedelta(seconds=120)).isoformat()

    assert mv.mover(sleep=waits.append).run().tenants[tenant_id].state == "paused"  # nothing asked of Dataverse
    clock.advance(timedelta(seconds=121))
    world.graph.fail_next(429, kind="api", retry_after="1")
    report = mv.mover(sleep=waits.append).run()
    assert report.tenants[tenant_id].moved == 2
    moved_ok(world, mv, paused.tenant, paused_files)

    # Graph asking for longer than a run waits: the tenant pauses until then, and nothing is changed meanwhile.
    # (The other tenant's job goes first: tenants run side by side, and its requests could take the scripted 429.)
    mv.attachment_jobs.delete(other_id)
    more = seed(paused.org, [KB])
    world.graph.fail_next(429, kind="api", retry_after="300")
    report = mv.mover(sleep=waits.append).run()
    assert (report.tenants[tenant_id].state, report.tenants[tenant_id].error) == ("throttled", "graph_throttled")
    status = job_status(mv.attachment_progress, mv.attachment_jobs.get(paused.tenant))
    assert status["paused_until"] == (clock.now() + timedelta(seconds=300)).isoformat()
    assert not cleared(paused.org, more[0]) and max(waits) <= 10


def test_refused_files_are_listed_with_id_and_size_kept_in_dynamics_and_retried_on_demand(
    mv, world, azurite, tenant_id, clock
):
    org = world.orgs[0]
    connected = connect(mv, world, org, tenant_id, max_file_bytes=100 * KB)
    small, large, differing = seed(org, [KB, 200 * KB, 2 * KB])
    # Someone put another file under the name the copy would get: its hash differs, so nothing is cleared.
    world.graph.put(DRIVE, path_of(mv, connected.tenant, differing), b"not the same file")

    report = mv.mover().run()
    assert (report.tenants[tenant_id].moved, report.tenants[tenant_id].failed) == (1, 2)
    assert cleared(org, small) and not cleared(org, large) and not cleared(org, differing)
    status = job_status(mv.attachment_progress, mv.attachment_jobs.get(connected.tenant))
    failed = {item["id"]: item for item in status["failed"]}
    assert failed[large.id]["reason"] == "too_large" and failed[large.id]["size"] == 200 * KB
    assert failed[differing.id]["reason"] == "copy_differs"
    assert set(failed[large.id]) == {"source", "id", "size", "state", "reason", "at"}  # no name, no content

    record = processing_record(connected.tenant, mv.registry, mv.storage, mv.audit, mv.clock)
    record["attachments"] = mv.attachments_report(connected.tenant)
    assert {item["id"] for item in record["attachments"]["failed"]} == {large.id, differing.id}
    page = render_html(record)
    assert large.id in page and "too_large" in page and large.name not in page and differing.name not in page

    # The wrong file is taken away in SharePoint; asked again, the next run moves the file.
    del world.graph.items[(DRIVE, path_of(mv, connected.tenant, differing).lower())]
    assert mv.attachment_progress.retry(tenant_id, {differing.id, str(uuid.uuid4())}) == (1, 1)
    report = mv.mover().run()
    assert report.tenants[tenant_id].moved == 1
    assert cleared(org, differing) and not cleared(org, large)
    moved_ok(world, mv, connected.tenant, [small, differing])
    status = job_status(mv.attachment_progress, mv.attachment_jobs.get(connected.tenant))
    assert [item["id"] for item in status["failed"]] == [large.id]

    # A refusal's marker expires within a day of the last run that saw it: the purge deletes it like other state.
    assert all_blobs(azurite, "state", f"{tenant_id}/attachments/")
    clock.advance(timedelta(days=1))
    mv.purger().run()
    assert all_blobs(azurite, "state", f"{tenant_id}/attachments/") == {}


def test_a_dry_run_lists_ids_and_sizes_and_changes_nothing(mv, world, azurite, tenant_id):
    org = world.orgs[0]
    connect(mv, world, org, tenant_id)
    files = seed(org, [KB, 2 * KB, 3 * KB])
    report = mv.mover().run(dry_run=True)
    assert sorted(report.would_move) == sorted(f"{tenant_id} {f.source} {f.id} {len(f.data)}" for f in files)
    assert world.graph.items == {} and org.patches == []
    assert all_blobs(azurite, "state", f"{tenant_id}/") == {}
    assert all_blobs(azurite, "registry", f"attachments/cursors/{tenant_id}") == {}


# ---------------------------------------------------------------------------------------------------- the routes

GOOD_JOB = {
    "sources": ["notes"],
    "note_tables": ["account"],
    "site_id": SITE,
    "drive_id": DRIVE,
    "mode": "link",
}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"folder": "{table}/../x"}, "folder"),
        ({"folder": "{owner}"}, "folder"),
        ({"mode": "delete"}, "mode"),
        ({"site_id": "not a site"}, "site_id"),
        ({"max_file_bytes": -1}, "max_file_bytes"),
        ({"link_column": "pc_link"}, "link_column"),
        ({"note_tables": []}, "note_tables"),
        ({"client_secret": "abc"}, "client_secret"),
    ],
)
def test_bad_configuration_is_a_422_naming_the_field_and_stores_nothing(manage, azurite, tenant_id, change, field):
    assert manage.put(f"/manage/tenants/{tenant_id}", json={}).status_code == 201
    answer = manage.put(f"/manage/tenants/{tenant_id}/attachments", json={**GOOD_JOB, **change})
    assert answer.status_code == 422
    body = answer.json()
    assert body["error"] == "invalid_attachment_job" and field in [e["field"] for e in body["errors"]]
    assert "abc" not in answer.text
    assert manage.get(f"/manage/tenants/{tenant_id}/attachments").status_code == 404
    assert all_blobs(azurite, "registry", f"attachments/jobs/{tenant_id}") == {}
    manage.delete(f"/manage/tenants/{tenant_id}")


def test_the_routes_need_a_target_then_set_show_retry_and_delete_the_job(
    manage, azurite, tenant_id, settings, clock, tmp_path
):
    assert manage.put(f"/manage/tenants/{tenant_id}", json={}).status_code == 201
    put = manage.put(f"/manage/tenants/{tenant_id}/attachments", json=GOOD_JOB)
    assert put.status_code == 409 and put.json()["error"] == "no_target"
    # A target as the delivery API stores it (the host's patterns accept only Dynamics 365 hosts).
    services = Services.build(settings.model_copy(update={"local_secrets_path": tmp_path / "secrets.json"}), clock)
    tenant = services.registry.get_tenant(tenant_id, fresh=True)
    services.delivery_targets.put(
        tenant,
        TargetIn.model_validate(
            target_body("https://contoso.crm4.dynamics.com/", str(uuid.uuid4()), str(uuid.uuid4()))
        ),
    )
    created = manage.put(f"/manage/tenants/{tenant_id}/attachments", json=GOOD_JOB)
    assert created.status_code == 201, created.text
    shown = manage.get(f"/manage/tenants/{tenant_id}/attachments").json()
    assert shown["mode"] == "link" and shown["status"]["failed"] == [] and "tenant_generation" not in shown
    assert manage.put(f"/manage/tenants/{tenant_id}/attachments", json=GOOD_JOB).status_code == 200
    retry = manage.post(f"/manage/tenants/{tenant_id}/attachments/retry", json={"ids": ["x"]})
    assert retry.status_code == 422
    assert manage.post(f"/manage/tenants/{tenant_id}/attachments/retry", json={"all": True}).json() == {
        "retried": 0,
        "not_failed": 0,
    }
    assert manage.delete(f"/manage/tenants/{tenant_id}/attachments").status_code == 204
    assert manage.get(f"/manage/tenants/{tenant_id}/attachments").status_code == 404
    assert manage.get("/manage/tenants/NOPE/attachments").status_code == 400
    services.delivery_targets.delete(tenant_id)
    manage.delete(f"/manage/tenants/{tenant_id}")


def test_a_file_sharepoint_refuses_stays_in_dynamics_is_listed_and_moves_when_retried(mv, world, tenant_id):
    org = world.orgs[0]
    connected = connect(mv, world, org, tenant_id)
    (f,) = seed(org, [3 * KB])
    # The drive answers (the scripted 200), then SharePoint refuses the file's request.
    world.graph.fail_next(200, kind="api")
    world.graph.fail_next(403, kind="api")
    report = mv.mover().run().tenants[tenant_id]
    assert (report.state, report.moved, report.failed) == ("ok", 0, 1)
    assert not cleared(org, f) and world.graph.items == {}
    (failed,) = job_status(mv.attachment_progress, mv.attachment_jobs.get(connected.tenant))["failed"]
    assert (failed["id"], failed["size"], failed["reason"]) == (f.id, 3 * KB, "sharepoint_403_generalException")

    assert mv.mover().run().tenants[tenant_id].moved == 0  # not tried again unasked ...
    assert mv.attachment_progress.retry(tenant_id, None) == (1, 0)
    assert mv.mover().run().tenants[tenant_id].moved == 1  # ... and moved once asked
    assert cleared(org, f)
    moved_ok(world, mv, connected.tenant, [f])
    assert job_status(mv.attachment_progress, mv.attachment_jobs.get(connected.tenant))["failed"] == []


def test_a_copy_whose_hash_graph_has_not_computed_yet_is_checked_again_by_the_next_run(mv, world, tenant_id):
    org = world.orgs[0]
    connected = connect(mv, world, org, tenant_id)
    (f,) = seed(org, [5 * KB])
    item = world.graph.put(DRIVE, path_of(mv, connected.tenant, f), f.data)  # an earlier run's upload ...
    real_hash, item.quick_xor_hash = item.quick_xor_hash, None  # ... whose hash SharePoint has not computed yet
    report = mv.mover().run().tenants[tenant_id]
    assert (report.moved, report.pending, report.failed) == (0, 1, 0)
    assert not cleared(org, f)
    (waiting,) = job_status(mv.attachment_progress, mv.attachment_jobs.get(connected.tenant))["failed"]
    assert (waiting["state"], waiting["reason"]) == ("retry", "hash_pending")

    item.quick_xor_hash = real_hash
    report = mv.mover().run().tenants[tenant_id]  # not listed again: its marker brings it back
    assert (report.moved, report.already_there) == (1, 1)
    assert cleared(org, f) and uploads(world.graph) == 0
