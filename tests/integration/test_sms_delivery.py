"""PowerSMS's records reach Dynamics 365 through PackCloud's Dataverse delivery like every record: an inbound message,
signed as Twilio signs it, becomes a record of an `sms` dataset in `dataverse` mode, is upserted into the fake
Dataverse with only the mapped fields, and is deleted from PackCloud's storage once Dataverse has it."""

from __future__ import annotations

import secrets
import uuid
from datetime import timedelta
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

from shared.dataverse.targets import TargetIn
from shared.lifecycle.delivery import SETTLE
from shared.registry.models import Dataset, TenantIn
from shared.registry.sms_account import SmsAccountIn
from shared.services import Services
from shared.sms.webhooks import Webhook
from tests.factories import CLIENT_SECRET, RECORD_KEY, SMS_TEXTS, all_blobs, target_body
from tests.integration.fake_dataverse import Column, fakes

TABLE = "pc_textmessages"


def test_an_inbound_message_is_delivered_into_dataverse_and_then_deleted(
    settings, clock, azurite, tenant_id, tmp_path, monkeypatch
):
    (tmp_path / "dataverse").mkdir()
    with fakes(tmp_path / "dataverse") as (ca, entra, (org,)):
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca.bundle))
        org.table(TABLE, "pc_textmessage", RECORD_KEY, pc_direction=Column(), pc_body=Column(), pc_from=Column())
        changed = settings.model_copy(
            update={
                "dynamics_host_patterns": (org.host,),
                "entra_authority": entra.url,
                "local_secrets_path": tmp_path / "secrets.json",
            }
        )
        services = Services.build(changed, clock)
        services.registry.put_tenant(tenant_id, TenantIn())
        mapping = {
            "mode": "dataverse",
            "table": TABLE,
            "key": RECORD_KEY,
            "columns": {"direction": "pc_direction", "body": "pc_body", "from": "pc_from"},
        }
        services.registry.put_dataset(tenant_id, "texts", Dataset.model_validate({**SMS_TEXTS, "delivery": mapping}))
        tenant = services.registry.get_tenant(tenant_id, fresh=True)
        token = secrets.token_hex(16)
        account = {"account_sid": "AC" + secrets.token_hex(16), "auth_token": token, "from_number": "+4722334455"}
        services.sms_accounts.put(tenant, SmsAccountIn.model_validate(account))
        entra_tenant, client = str(uuid.uuid4()), str(uuid.uuid4())
        entra.register(entra_tenant, client, secret=CLIENT_SECRET)
        org.users.add(client)
        services.delivery_targets.put(tenant, TargetIn.model_validate(target_body(org.url, entra_tenant, client)))

        path = f"/sms/inbound/{tenant_id}/texts"
        form = {"MessageSid": "SM" + secrets.token_hex(16), "AccountSid": account["account_sid"],
                "From": "+4791234567", "To": "+4722334455", "Body": "Yes, Tuesday suits me"}  # fmt: skip
        signature = RequestValidator(token).compute_signature(f"{services.sms.public_base()}{path}", form)
        hook = Webhook(
            path=path,
            query="",
            body=urlencode(form).encode(),
            headers={"content-type": "application/x-www-form-urlencoded", "x-twilio-signature": signature},
        )
        record_id = services.sms.inbound(tenant_id, "texts", hook)
        assert record_id in "".join(all_blobs(azurite, "records", f"{tenant_id}/texts/"))

        clock.advance(SETTLE + timedelta(seconds=1))
        try:
            report = services.deliverer.run()
        finally:
            services.delivery_targets.delete(tenant_id)
        assert report.delivered == 1
        (row,) = org.rows[TABLE].values()
        assert row["pc_direction"] == "inbound" and row["pc_body"] == "Yes, Tuesday suits me"
        assert row["pc_from"] == "+4791234567"
        assert set(row) == {"id", RECORD_KEY, "pc_direction", "pc_body", "pc_from"}
        assert all_blobs(azurite, "records", f"{tenant_id}/") == {}
