"""PowerAttachment through the local host: the job set with the manage API, the timer `attachment_mover` running
on its schedule, its status shown; and the host's whole log at DEBUG searched for any file name or content."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from devenv.azurite import Azurite, free_port, start_azurite, wait_for_port
from devenv.local_host import stop_local_host
from tests.factories import CLIENT_SECRET, FUNCTION_KEY, HOST_MASTER_KEY, ROOT, all_blobs, settings_values, target_body
from tests.integration.fake_dataverse import FakeDataverse, FakeEntra, fakes
from tests.integration.fake_graph import FakeGraph, start_graph

SITE = "contoso.sharepoint.com,2c712604-1370-44e7-a1f5-426573fda80a,2d2244c3-251a-49ea-93a8-39e1c3a060fe"
DRIVE = "b!HostAttachments0123456789"
TIMER_SECONDS = 2
WAIT_S = 90


@dataclass
class Stack:
    api: str
    storage: Azurite
    entra: FakeEntra
    org: FakeDataverse
    graph: FakeGraph
    log: Path


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("attachments-host")
    storage = start_azurite()
    try:
        with fakes(folder) as (ca, entra, orgs):
            graph, graph_server = start_graph(ca, entra)
            graph.add_drive(SITE, DRIVE)
            port = free_port()
            env = {
                **os.environ,
                **settings_values(storage.connection_string),
                "PACKCLOUD_ATTACHMENT_SCHEDULE": f"*/{TIMER_SECONDS} * * * * *",
                "PACKCLOUD_DYNAMICS_HOST_PATTERNS": orgs[0].host,
                "PACKCLOUD_ENTRA_AUTHORITY": entra.url,
                "PACKCLOUD_GRAPH_URL": graph.url,
                "PACKCLOUD_LOCAL_SECRETS_PATH": str(folder / "secrets.json"),
                "REQUESTS_CA_BUNDLE": str(ca.bundle),
                "DEVHOST_FUNCTION_KEY": FUNCTION_KEY,
                "DEVHOST_MASTER_KEY": HOST_MASTER_KEY,
                "DEVHOST_LOG_LEVEL": "debug",
            }
            log_path = folder / "host.log"
            try:
                with log_path.open("wb") as log:
                    process = subprocess.Popen(
                        [sys.executable, "-m", "devhost", "--root", str(ROOT), "--port", str(port)],
                        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                    )  # fmt: skip
                    try:
                        wait_for_port(port, 60, process)
                        yield Stack(f"http://127.0.0.1:{port}/api", storage, entra, orgs[0], graph, log_path)
                    finally:
                        stop_local_host(process)
            finally:
                graph_server.shutdown()
                graph_server.server_close()
    finally:
        storage.stop()


@pytest.fixture
def manage(stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.api, headers={"x-functions-key": FUNCTION_KEY}, timeout=60) as client:
        yield client


def eventually(condition: Callable[[], bool], seconds: float = WAIT_S) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the timer did not get there in time"
        time.sleep(0.5)


def test_the_timer_moves_what_the_job_names_and_the_debug_log_holds_no_name_and_no_content(stack, manage, tenant_id):
    assert manage.put(f"/manage/tenants/{tenant_id}", json={}).status_code == 201
    entra_tenant, client = str(uuid.uuid4()), str(uuid.uuid4())
    stack.entra.register(entra_tenant, client, secret=CLIENT_SECRET)
    stack.org.users.add(client)
    stack.graph.grant(client, SITE)
    target = manage.put(f"/manage/tenants/{tenant_id}/delivery", json=target_body(stack.org.url, entra_tenant, client))
    assert target.status_code == 201, target.text
    names = [f"Invoice for Bartholomew Quux {uuid.uuid4().hex[:8]}.pdf" for _ in range(4)]
    data = [os.urandom(size) for size in (2 * 1024, 700 * 1024, 5 * 1024 * 1024 + 3, 9)]
    record = str(uuid.uuid4())
    notes = [stack.org.add_note("account", record, name, body) for name, body in zip(names[:3], data[:3], strict=True)]
    attachment = stack.org.add_mime_attachment(str(uuid.uuid4()), names[3], data[3])
    job = {"sources": ["notes", "email"], "note_tables": ["account"], "site_id": SITE, "drive_id": DRIVE}
    created = manage.put(f"/manage/tenants/{tenant_id}/attachments", json={**job, "mode": "link"})
    assert created.status_code == 201, created.text

    eventually(lambda: all(stack.org.file_bytes("annotations", note) is None for note in notes))
    eventually(lambda: stack.org.mime_attachments[attachment]["mimetype"] == "application/internet-shortcut")
    for note, name, body in zip(notes, names[:3], data[:3], strict=True):
        item = stack.graph.item(DRIVE, f"account/{record}/{note} {name}")
        assert item is not None and item.data == body
    eventually(
        lambda: (
            (manage.get(f"/manage/tenants/{tenant_id}/attachments").json()["status"]["last_run"] or {}).get("moved")
            == 4
        ),
        30,
    )
    shown = manage.get(f"/manage/tenants/{tenant_id}/attachments").json()
    assert shown["status"]["failed"] == [] and shown["status"]["moving"] == []

    blobs = {
        name: content for c in ("registry", "state", "audit") for name, content in all_blobs(stack.storage, c).items()
    }
    logged = stack.log.read_text(errors="replace")
    assert f"DEBUG packcloud.attachments: attachment notes {notes[0]}: moved" in logged  # the search means something
    for name in names:
        assert name not in logged and "Bartholomew" not in logged
        assert not [blob for blob, content in blobs.items() if name.encode() in content or name in blob]
    for body in data:
        for piece in (body[:12].hex(), base64.b64encode(body[:12]).decode()):
            assert piece not in logged
    assert CLIENT_SECRET not in logged and not any(token in logged for token in stack.entra.tokens)
    assert not re.search(r"[?&][A-Za-z0-9_.%$-]+=", logged), "a URL with a query string reached the log"
    manage.delete(f"/manage/tenants/{tenant_id}/attachments")
    manage.delete(f"/manage/tenants/{tenant_id}/delivery")
    manage.delete(f"/manage/tenants/{tenant_id}")
