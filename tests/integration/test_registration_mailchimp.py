"""The registration engine's `mailchimp` pack: its API key becomes the tenant's Mailchimp connection in the
tenant's region (the secret store there), checked before anything is stored, and gone with the tenant."""

from __future__ import annotations

import json
import uuid

import pytest

from shared.core.errors import Unprocessable
from shared.registration.engine import RegistrationIn
from tests.factories import blob_states, registration

API_KEY = "0123456789abcdef0123456789abcdef-us21"


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


def test_the_mailchimp_pack_gives_the_tenant_its_connection_and_deregistering_removes_it(home):
    body = registration(str(uuid.uuid4()), pack="mailchimp", credentials={"mailchimp-api-key": API_KEY})
    status, created = home.registrations.register(RegistrationIn.model_validate(body))
    assert status == 201
    tenant = home.registry.get_tenant(created["tenant"], fresh=True)
    connection = home.mailchimp.connections.get(tenant)
    assert connection is not None and connection.data_centre == "us21"
    assert home.secrets.get(connection.secret_name) == API_KEY
    home.registrations.deregister(created["tenant"])
    assert home.mailchimp.connections.get(tenant) is None
    assert home.secrets.get(connection.secret_name) is None


@pytest.mark.parametrize(
    "key", ["not-a-key", "0123456789abcdef0123456789abcdef", "0123456789ABCDEF0123456789abcdef-us21"]
)
def test_a_mailchimp_registration_with_a_bad_key_is_refused_with_nothing_stored(home, azurite, key):
    body = registration(str(uuid.uuid4()), pack="mailchimp", credentials={"mailchimp-api-key": key})
    before = blob_states(azurite, ("registry", "records", "state"))
    with pytest.raises(Unprocessable) as refused:
        home.registrations.register(RegistrationIn.model_validate(body))
    assert "credentials.mailchimp-api-key" in [problem["field"] for problem in refused.value.extra["errors"]]
    assert blob_states(azurite, ("registry", "records", "state")) == before
    assert key not in refused.value.detail
    secrets_path = home.settings.local_secrets_path
    assert not secrets_path.exists() or json.loads(secrets_path.read_text()) == {}
