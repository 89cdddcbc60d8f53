"""Fuzzing from the API description: schemathesis generates requests for every route of openapi.yaml and sends
each twice to a home local host (which serves every route), once with valid keys and once with wrong ones.

Every answer must be no 5xx, have a documented status and content type, and match its documented schema.
Two of three cases go to a real tenant with real datasets, so generated bodies reach the validation of each
capability rather than stopping at an unknown id. The bounded run here is part of `make test`; `make fuzz`
sets PACKCLOUD_FUZZ_EXAMPLES for a long one.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import FUNCTION_KEY, HOST_MASTER_KEY, settings_env
from tests.test_geo_rules import SIGNINS
from tests.test_http_webform import FORM
from tests.test_registration import REGISTRATION_KEY, give_registration_key

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = int(os.environ.get("PACKCLOUD_FUZZ_EXAMPLES", "25"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
TENANT = "fuzz-tenant"
PIXEL = {
    **SIGNINS,
    "capability": "pixel",
    "subject_field": None,
    "fields": [{"name": "page_url", "type": "url"}, {"name": "visitor", "type": "string"}],
    "allowed_origins": ["https://www.contoso.example"],
}
DATASETS = {"pixel": ("visits", PIXEL), "webform": ("contact", FORM), "geologin": ("signins", SIGNINS)}

# Loaded at collection, from the file: one test per operation (the pytest plugin of schemathesis does not
# follow pytest 9's node ids, so each test drives Hypothesis itself).
SCHEMA = schemathesis.openapi.from_path(ROOT / "openapi.yaml")
OPERATIONS = {op.label: op for op in (result.ok() for result in SCHEMA.get_all_operations())}
schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.fixture(scope="module")
def fuzz_host(azurite, tmp_path_factory):
    """A home (us) host: it serves every route of openapi.yaml, the registration routes included."""
    from devenv.azurite import free_port
    from devenv.local_host import start_local_host, stop_local_host

    port = free_port()
    secrets_path = tmp_path_factory.mktemp("fuzz") / "secrets.json"
    give_registration_key(secrets_path)
    env = {
        **os.environ,
        **settings_env(azurite, region="us"),
        "PACKCLOUD_ROLE": "regional,registration",
        "PACKCLOUD_LOCAL_SECRETS_PATH": str(secrets_path),
        "PACKCLOUD_FORM_RATE_PER_MINUTE": "0",
        "DEVHOST_FUNCTION_KEY": FUNCTION_KEY,
        "DEVHOST_MASTER_KEY": HOST_MASTER_KEY,
    }
    process = start_local_host(port, env)
    api = f"http://127.0.0.1:{port}/api"
    with httpx.Client(base_url=api, headers={"x-functions-key": FUNCTION_KEY}, timeout=30) as manage:
        created = manage.put(f"/manage/tenants/{TENANT}", json={})
        assert created.status_code in (200, 201)
        for dataset, declaration in DATASETS.values():
            assert manage.put(f"/manage/tenants/{TENANT}/datasets/{dataset}", json=declaration).status_code < 300
        sequence = {"format": "F-{SEQNUM:4}"}
        assert manage.put(f"/manage/tenants/{TENANT}/sequences/numbers", json=sequence).status_code < 300
    yield api, created.json().get("api_key")
    stop_local_host(process)


def _aimed(case) -> bool:
    """Two of three cases at the real tenant (deterministic, so a failure replays). Never a key rotation: the
    real tenant's key would change, and every later route would answer only 403s."""
    digest = hashlib.sha256(repr(sorted(case.path_parameters.items())).encode()).digest()
    rotation = case.operation.path.endswith("/keys/rotate")
    return digest[0] % 3 != 0 and case.method.upper() != "DELETE" and not rotation


def _aim(case) -> None:
    parameters = case.path_parameters
    if "tenant" in parameters:
        parameters["tenant"] = TENANT
    if "dataset" in parameters:
        path = case.operation.path
        capability = "pixel" if path.startswith("/px") else "webform" if path.startswith("/forms") else "geologin"
        parameters["dataset"] = DATASETS[capability][0]
    if "sequence" in parameters:
        parameters["sequence"] = "numbers"


@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_every_route_answers_as_documented_with_valid_and_wrong_keys(label, fuzz_host):
    api, tenant_key = fuzz_host
    valid = {
        "x-functions-key": FUNCTION_KEY,
        "x-registration-key": REGISTRATION_KEY,
        "authorization": f"Bearer {tenant_key}",
    }
    wrong = {
        "x-functions-key": "wrong-function-key",
        "x-registration-key": "wrong-registration-key",
        "authorization": "Bearer pck_wrong",
    }

    @given(case=OPERATIONS[label].as_strategy())
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    def fuzz(case):
        if _aimed(case) and case.path_parameters:
            _aim(case)
        for keys in (valid, wrong):
            response = case.call(base_url=api, headers={**(case.headers or {}), **keys}, timeout=30)
            case.validate_response(response, checks=CHECKS)

    fuzz()
