"""The short run of `make load`: a mixed workload, then the reconciliation. Assertions are on what was stored,
never on a time (the machine is shared)."""

from __future__ import annotations

import json

from azure.storage.blob import BlobServiceClient

from bench.common import local_stack
from bench.load import UNKNOWN_TENANT, reconcile, run_load


def test_a_mixed_load_is_reconciled_exactly_and_the_reconciliation_catches_what_is_off():
    with local_stack({"PACKCLOUD_FORM_RATE_PER_MINUTE": "0"}) as stack:
        report = run_load(stack.api, stack.function_key, stack.azurite.connection_string, 6, 16, 3)
        result = report.as_result()
        statuses = result["statuses"]
        # Every capability of the mix was served, and the unknown tenant was refused.
        assert {"pixel", "form", "autonumber", "geologin"} <= set(statuses)
        assert all(any(code.startswith("2") for code in statuses[kind]) for kind in statuses)
        assert any(s.tenant == UNKNOWN_TENANT and s.status == 404 for s in report.sent)
        assert {s.status for s in report.sent} <= {200, 201, 404, 503}  # never a 500, never a dropped connection
        reconciled = report.reconciliation
        assert reconciled.ok, result["reconciliation"]
        assert reconciled.answered > 0 and reconciled.missing == reconciled.duplicated == 0
        assert reconciled.numbers_twice == 0 and reconciled.unknown_tenant_blobs == 0

        # The reconciliation is not a formality: a record lost, one stored twice, a stray blob of the unknown
        # tenant and a number handed out twice are each counted.
        service = BlobServiceClient.from_connection_string(stack.azurite.connection_string)
        records = service.get_container_client("records")
        form = next(s for s in report.sent if s.kind == "form" and s.status == 201)
        visit = next(s for s in report.sent if s.kind == "pixel" and s.status == 200 and s.tenant != UNKNOWN_TENANT)
        records.delete_blob(f"{form.tenant}/contact/{form.record_id}.json")
        twin = next(
            name
            for name in (b.name for b in records.list_blobs(name_starts_with=f"{visit.tenant}/visits/"))
            if json.loads(records.download_blob(name).readall())["fields"]["visitor"] == visit.subject
        )
        records.upload_blob(twin.replace(".json", "0.json"), records.download_blob(twin).readall())
        records.upload_blob(f"{UNKNOWN_TENANT}/visits/stray.json", json.dumps({"dataset": "none"}))
        numbered = next(s for s in report.sent if s.kind == "autonumber" and s.numbers)
        report.sent.append(numbered)
        again = reconcile(stack.azurite.connection_string, report.sent, [f"load-{n}" for n in (1, 2, 3)])
        assert (again.missing, again.duplicated, again.unknown_tenant_blobs) == (1, 1, 1)
        assert again.numbers_twice == len(numbered.numbers)
        assert not again.ok
