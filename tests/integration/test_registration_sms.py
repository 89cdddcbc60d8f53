"""The registration engine's `sms` pack: its Twilio credentials become the tenant's SMS account in the tenant's
region (the secret store there), checked before anything is stored."""

from __future__ import annotations

import json
import secrets
import uuid

import pytest

from shared.core.errors import Unprocessable
from shared.registration.engine import RegistrationIn
from tests.factories import blob_states, registration


@pytest.fixture
def home(settings, clock, tmp_path):
    from shared.services import Services

    changed = settings.model_copy(
        update={
            "region": "us",
            "role": frozenset({"regional", "registration"}),
            "local_secrets_path": tmp_path / ".state" / "secrets.json",
        }
    )
    return Services.build(changed, clock)


def twilio_credentials(**changes: str | None) -> dict[str, str]:
    values = {
        "twilio-account-sid": "AC" + secrets.token_hex(16),
        "twilio-auth-token": secrets.token_hex(16),
        "twilio-from": "+4722334455",
    }
    values.update(changes)  # type: ignore[arg-type]
    return {name: value for name, value in values.items() if value is not None}


def test_the_sms_pack_gives_the_tenant_its_twilio_account(home):
    credentials = twilio_credentials(
        **{"twilio-api-key-sid": "SK" + secrets.token_hex(16), "twilio-api-key-secret": secrets.token_urlsafe(20)}
    )
    body = registration(str(uuid.uuid4()), pack="sms", credentials=credentials)
    status, created = home.registrations.register(RegistrationIn.model_validate(body))
    assert status == 201
    tenant = home.registry.get_tenant(created["tenant"], fresh=True)
    account = home.sms_accounts.get(tenant)
    assert account is not None and account.account_sid == credentials["twilio-account-sid"]
    assert account.sending_credentials() == (credentials["twilio-api-key-sid"], credentials["twilio-api-key-secret"])
    assert account.auth_token.get_secret_value() == credentials["twilio-auth-token"]
    assert created["credentials"] == sorted(credentials)
    # Deregistering removes the account with the tenant.
    home.registrations.deregister(created["tenant"])
    assert home.sms_accounts.get(tenant) is None


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"twilio-from": None}, "credentials"),  # no sender
        ({"twilio-account-sid": "not-a-sid"}, "credentials.twilio-account-sid"),
        ({"twilio-auth-token": None}, "credentials.twilio-auth-token"),
        ({"twilio-from": "22334455"}, "credentials"),
    ],
)
def test_an_sms_registration_without_a_usable_account_is_refused_with_nothing_stored(home, azurite, changes, field):
    body = registration(str(uuid.uuid4()), pack="sms", credentials=twilio_credentials(**changes))
    before = blob_states(azurite, ("registry", "records", "state"))
    with pytest.raises(Unprocessable) as refused:
        home.registrations.register(RegistrationIn.model_validate(body))
    assert field in [problem["field"] for problem in refused.value.extra["errors"]]
    assert blob_states(azurite, ("registry", "records", "state")) == before
    secrets_path = home.settings.local_secrets_path
    assert not secrets_path.exists() or json.loads(secrets_path.read_text()) == {}
    for value in twilio_credentials(**changes).values():
        assert value not in refused.value.detail
