"""A tenant's delivery target: its Dynamics 365 organisation and the application PackCloud signs in as.

The organisation URL is the customer's instruction (GDPR art. 28(3)(a)): records of the tenant's `dataverse`
datasets go there and nowhere else, so it must be on a Dynamics 365 host (PACKCLOUD_DYNAMICS_HOST_PATTERNS, read as a
browser reads it). The client secret or certificate goes to the secret store (Key Vault, or the local 0600 file)
under a name never used before, and nowhere else: the target document in `registry/delivery/targets/` keeps the
secret's name only. A target belongs to one generation of its tenant: a tenant deleted and created again has
none until one is given again, and the deliverer removes a target (and its secret) that outlived its tenant.

The status (`ok`, `failing` with the last error's code and time, `stopped` when the credentials were refused for
good) is a document of its own, written by the deliverer for one version of the target: a target given again
gets a new version, which is how `stopped` ends.
"""

from __future__ import annotations

from datetime import datetime
from secrets import token_hex
from typing import Any, Literal
from uuid import UUID

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from shared.core.clock import Clock
from shared.core.errors import Unprocessable
from shared.core.settings import Settings
from shared.core.urls import dynamics_url
from shared.dataverse.client import AppCredentials, CredentialKind
from shared.registry.models import Tenant
from shared.storage.audit import AuditLog
from shared.storage.blobs import REGISTRY, Storage
from shared.storage.secrets import SecretStore
from shared.storage.tenant_credentials import CredentialDocument, CredentialSpec, TenantCredentials

MAX_CLIENT_SECRET = 1024
MAX_CERTIFICATE_PEM = 16384
TargetState = Literal["ok", "failing", "stopped"]


TARGETS_PREFIX = "delivery/targets/"


def target_blob(tenant: str) -> str:
    return f"{TARGETS_PREFIX}{tenant}.json"


def status_blob(tenant: str) -> str:
    return f"delivery/status/{tenant}.json"


def _certificate(value: SecretStr | None) -> SecretStr | None:
    """A PEM with the application's certificate and its unencrypted RSA private key (what Entra ID signs with)."""
    if value is None:
        return None
    data = value.get_secret_value().strip().encode("ascii", "replace")
    if len(data) > MAX_CERTIFICATE_PEM:
        raise ValueError(f"a certificate PEM has at most {MAX_CERTIFICATE_PEM} characters")
    problem = "must be a PEM holding the certificate and its unencrypted RSA private key"
    try:
        key = load_pem_private_key(data, password=None)
        certificate = x509.load_pem_x509_certificate(data)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ValueError(problem) from None
    if not isinstance(key, rsa.RSAPrivateKey) or not isinstance(certificate.public_key(), rsa.RSAPublicKey):
        raise ValueError(problem)
    public = certificate.public_key()
    if not isinstance(public, rsa.RSAPublicKey) or key.public_key().public_numbers() != public.public_numbers():
        raise ValueError("the private key is not the certificate's")
    return SecretStr(data.decode())


class TargetCredentials(BaseModel):
    """The application: its Entra tenant, its client id, and exactly one of a client secret or a certificate."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    entra_tenant_id: UUID = Field(description="the Microsoft Entra tenant (directory) id of the organisation")
    client_id: UUID = Field(description="the application (client) id of the app registration")
    client_secret: SecretStr | None = Field(default=None, min_length=1, max_length=MAX_CLIENT_SECRET)
    certificate: SecretStr | None = None

    _pem = field_validator("certificate")(_certificate)

    @model_validator(mode="after")
    def _one_secret(self) -> TargetCredentials:
        if (self.client_secret is None) == (self.certificate is None):
            raise ValueError("give exactly one of client_secret and certificate")
        return self

    @property
    def kind(self) -> CredentialKind:
        return "certificate" if self.certificate is not None else "client_secret"

    def secret_value(self) -> str:
        secret = self.certificate if self.certificate is not None else self.client_secret
        assert secret is not None
        return secret.get_secret_value()


class TargetIn(TargetCredentials):
    """`PUT /api/manage/tenants/{tenant}/delivery`."""

    organization_url: str = Field(min_length=8, max_length=2048)


class Target(CredentialDocument):
    """As stored: never the secret, only its name in the secret store."""

    organization_url: str
    entra_tenant_id: UUID
    client_id: UUID
    credential: CredentialKind
    version: str = Field(pattern=r"^[0-9a-f]{16}$")

    def public(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"secret_name", "tenant_generation"})


class TargetStatus(BaseModel):
    """What the deliverer last met, for one version of the target."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str
    state: TargetState = "ok"
    error: str | None = None
    error_at: datetime | None = None
    paused_until: datetime | None = None

    def public(self) -> dict[str, Any]:
        last_error = {"code": self.error, "at": self.error_at.isoformat()} if self.error and self.error_at else None
        paused = self.paused_until.isoformat() if self.paused_until else None
        return {"state": self.state, "last_error": last_error, "paused_until": paused}


TARGETS = CredentialSpec(Target, TARGETS_PREFIX, purpose="dataverse", audit="delivery_target")


class Targets:
    def __init__(
        self, storage: Storage, secrets: SecretStore, audit: AuditLog, clock: Clock, settings: Settings
    ) -> None:
        self._storage = storage
        self._secrets = secrets
        self._settings = settings
        self._docs = TenantCredentials(storage, secrets, audit, clock, TARGETS)

    # -- the manage API ---------------------------------------------------------------------

    def put(self, tenant: Tenant, change: TargetIn) -> tuple[Target, bool]:
        """Store a target (a new version): the secret under a new name first, then the document, then the previous
        secret is deleted. Nothing is written when the organisation URL is refused."""
        url = self.organization_url(change.organization_url)
        fields = {
            "organization_url": url,
            "entra_tenant_id": change.entra_tenant_id,
            "client_id": change.client_id,
            "credential": change.kind,
            "version": token_hex(8),
        }

        def facts(target: Target) -> dict[str, Any]:
            return {"organization": url, "credential": change.kind, "version": target.version}

        return self._docs.put(tenant, change.secret_value(), fields, facts)

    def organization_url(self, url: str) -> str:
        try:
            return dynamics_url(url, self._settings.dynamics_host_patterns)
        except ValueError as reason:
            raise Unprocessable(
                "invalid_target",
                f"invalid delivery target: organization_url: {reason}",
                errors=[{"field": "organization_url", "reason": str(reason)}],
            ) from None

    def get(self, tenant: Tenant) -> Target | None:
        """The tenant's target, when it was given to this generation of the tenant."""
        return self._docs.get(tenant)

    def delete(self, tenant_id: str) -> bool:
        """The target, its status and its secret."""
        return self._docs.delete(tenant_id, audited=False, also=[status_blob(tenant_id)])

    def remove(self, tenant_id: str) -> bool:
        """The operator's deletion of a target: as `delete`, with its audit entry."""
        return self._docs.delete(tenant_id, audited=True, also=[status_blob(tenant_id)])

    def forget(self, tenant_id: str) -> None:
        """With its tenant (shared/services.py `forget_tenant_credentials`): audited, as every credential store's."""
        self.remove(tenant_id)

    # -- the deliverer ----------------------------------------------------------------------

    def all(self) -> list[Target]:
        """Every target of this deployment: one listing of `delivery/targets/`."""
        return self._docs.all()

    def credentials(self, target: Target) -> AppCredentials | None:
        secret = self._docs.secret(target)
        if secret is None:
            return None
        return AppCredentials(
            authority=self._settings.entra_authority,
            entra_tenant_id=str(target.entra_tenant_id),
            client_id=str(target.client_id),
            kind=target.credential,
            secret=secret,
        )

    def status(self, target: Target) -> TargetStatus:
        body, _ = self._storage.read_json(REGISTRY, status_blob(target.tenant))
        status = TargetStatus.model_validate(body) if body is not None else None
        return (
            status if status is not None and status.version == target.version else TargetStatus(version=target.version)
        )

    def set_status(self, target: Target, status: TargetStatus) -> None:
        self._docs.write(status_blob(target.tenant), status)
