"""A delivery target's body: ids, exactly one secret, a certificate that Entra ID can use; never a value echoed."""

import uuid

import pytest
from pydantic import ValidationError

from shared.core.bodies import validate_model
from shared.core.errors import Unprocessable
from shared.core.settings import DYNAMICS_HOST_PATTERNS
from shared.core.urls import dynamics_url
from shared.dataverse.targets import TargetIn
from tests.factories import CLIENT_SECRET, application_certificate, target_body

ORG = "https://contoso.crm4.dynamics.com/"
TENANT, CLIENT = str(uuid.uuid4()), str(uuid.uuid4())


@pytest.fixture(scope="module")
def certificate() -> str:
    return application_certificate()


def test_a_target_with_a_client_secret():
    target = TargetIn.model_validate(target_body(ORG, TENANT, CLIENT))
    assert target.kind == "client_secret" and target.secret_value() == CLIENT_SECRET
    assert CLIENT_SECRET not in repr(target) and CLIENT_SECRET not in target.model_dump_json()


def test_a_target_with_a_certificate(certificate):
    target = TargetIn.model_validate(target_body(ORG, TENANT, CLIENT, client_secret=None, certificate=certificate))
    assert target.kind == "certificate"
    assert "PRIVATE KEY" in target.secret_value() and "CERTIFICATE" in target.secret_value()


def refused(body: dict) -> list[dict[str, str]]:
    with pytest.raises(Unprocessable) as caught:
        validate_model(TargetIn, body, "invalid_target", "delivery target")
    error = caught.value.body()
    for secret in (CLIENT_SECRET, "-----BEGIN"):
        assert secret not in error["detail"] and all(secret not in e["reason"] for e in error["errors"])
    return error["errors"]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"entra_tenant_id": "contoso"}, "entra_tenant_id"),
        ({"client_id": "not-a-guid"}, "client_id"),
        ({"client_secret": ""}, "client_secret"),
        ({"client_secret": "x" * 1025}, "client_secret"),
        ({"client_secret": None}, "body"),  # neither secret nor certificate
        ({"certificate": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}, "certificate"),
        ({"organization_url": None}, "organization_url"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_every_bad_target_names_its_field(changes, field):
    assert field in [e["field"] for e in refused(target_body(ORG, TENANT, CLIENT, **changes))]


def test_both_a_secret_and_a_certificate_are_refused(certificate):
    fields = [e["field"] for e in refused(target_body(ORG, TENANT, CLIENT, certificate=certificate))]
    assert fields == ["body"]


def test_a_certificate_without_its_key_or_with_another_key_is_refused(certificate):
    other = application_certificate("other")
    only_certificate = certificate[certificate.index("-----BEGIN CERTIFICATE") :]
    foreign_key = other[: other.index("-----BEGIN CERTIFICATE")] + only_certificate
    for pem in (only_certificate, foreign_key):
        with pytest.raises(ValidationError):
            TargetIn.model_validate(target_body(ORG, TENANT, CLIENT, client_secret=None, certificate=pem))


@pytest.mark.parametrize(
    "url",
    [
        "http://contoso.crm4.dynamics.com/",
        "https://contoso.crm4.dynamics.com.evil.example/",
        "https://evil.example\\.crm4.dynamics.com/",
        "https://contoso.crm4.dynamics.com:8443/",
        "https://user@contoso.crm4.dynamics.com/",
    ],
)
def test_the_organisation_must_be_a_dynamics_host(url):
    with pytest.raises(ValueError, match="must"):
        dynamics_url(url, DYNAMICS_HOST_PATTERNS)
