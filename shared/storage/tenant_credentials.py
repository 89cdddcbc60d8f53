"""A tenant's credential kept as a document and a secret: delivery targets (dataverse/targets.py), Twilio accounts
(registry/sms_account.py), Mailchimp connections (mailchimp/connection.py), DPO webhooks (dpo/webhooks.py) and
SendGrid verification keys (storage/email_keys.py) are kept through `TenantCredentials`, each described by one
`CredentialSpec`; each is a `TenantCredentialStore`, what goes with a deleted tenant.

The secret goes to the secret store under a name never used before (`pc-<tenant>--<purpose>-<random>`: Key Vault
keeps a deleted name under purge protection, and writing it again would bring back the deleted values as older
versions, see shared/storage/secrets.py). The document `<prefix><tenant>.json` in the registry container names that
secret and holds only what is not secret (a pydantic model per provider, based on `CredentialDocument`), with the
tenant generation it was given for: a tenant deleted and created again has no credential until one is given again.

Replacing writes the new secret, then the document, then forgets the previous secret (an earlier generation's
too); a document that cannot be written takes its new secret with it. Deleting removes the document, then the
secret. Forgetting a secret is best effort: one left behind is named by no document.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from secrets import token_hex
from typing import Any, Generic, Protocol, TypeVar

from azure.core.exceptions import ResourceNotFoundError
from pydantic import BaseModel, ConfigDict

from shared.core.clock import Clock
from shared.core.errors import StorageUnavailable
from shared.storage.audit import AuditLog
from shared.storage.blobs import JSON_CONTENT, REGISTRY, Storage, storage_errors
from shared.storage.secrets import SecretStore, tenant_secret_name


class TenantRef(Protocol):
    """What a credential store needs of a tenant (registry/models.py `Tenant`, a layer above, has it)."""

    @property
    def id(self) -> str: ...
    @property
    def generation(self) -> str: ...


class TenantCredentialStore(Protocol):
    """A store of what a tenant was given (a delivery target, an account, a key, a webhook...): the composition
    root's `forget_tenant_credentials` goes through every one when the tenant is deleted."""

    def forget(self, tenant_id: str) -> None:
        """Whatever the tenant has here goes, with its secrets; nothing there is no error."""
        ...


class CredentialDocument(BaseModel):
    """The stored part every provider's document has; a provider's model adds its non-secret fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant: str
    tenant_generation: str
    secret_name: str
    created_at: datetime
    updated_at: datetime


D = TypeVar("D", bound=CredentialDocument)


@dataclass(frozen=True)
class CredentialSpec(Generic[D]):
    """One provider's credential: its document model, the documents' prefix in the registry container, the
    `<purpose>` of its secrets' names `pc-<tenant>--<purpose>-<random>`, and its audit entries' kind (whose
    `change` is created, replaced or deleted). `legacy_secret`: the one fixed-name secret a provider kept its
    credential in before documents (`tenant -> name`), which deleting the credential deletes too."""

    document: type[D]
    prefix: str
    purpose: str
    audit: str
    legacy_secret: Callable[[str], str] | None = None


class TenantCredentials(Generic[D]):
    """The credentials of one kind of this region's tenants."""

    def __init__(
        self, storage: Storage, secrets: SecretStore, audit: AuditLog, clock: Clock, spec: CredentialSpec[D]
    ) -> None:
        self._storage = storage
        self._secrets = secrets
        self._audit = audit
        self._clock = clock
        self._document = spec.document
        self.prefix = spec.prefix
        self._purpose = spec.purpose
        self.kind = spec.audit
        self._legacy_secret = spec.legacy_secret

    def blob(self, tenant_id: str) -> str:
        return f"{self.prefix}{tenant_id}.json"

    def get(self, tenant: TenantRef) -> D | None:
        """The tenant's document, when it was given to this generation of the tenant."""
        return self.current(tenant)[0]

    def current(self, tenant: TenantRef) -> tuple[D | None, bool]:
        """This generation's document, and whether the tenant has one of any generation (then no credential of the
        earlier fixed-name layout is left to read): one storage read for both."""
        doc = self.stored(tenant.id)
        return (doc if doc is not None and doc.tenant_generation == tenant.generation else None), doc is not None

    def stored(self, tenant_id: str) -> D | None:
        """The document whatever its generation (the deliverer and the timers remove what outlived its tenant)."""
        body, _ = self._storage.read_json(REGISTRY, self.blob(tenant_id))
        return self._document.model_validate(body) if body is not None else None

    def secret(self, doc: CredentialDocument) -> str | None:
        return self._secrets.get(doc.secret_name)

    def put(
        self,
        tenant: TenantRef,
        secret: str,
        fields: Mapping[str, Any],
        facts: Callable[[D], Mapping[str, Any]] = lambda _: {},
        *,
        had: bool = False,
    ) -> tuple[D, bool]:
        """The secret under a new name, the document (`fields`: the provider's non-secret part), then the previous
        secret goes; audited with `facts` of the new document. Returns the document and whether it is new to this
        generation of the tenant (`had`: the tenant has it in a provider's earlier layout, so it is replaced)."""
        before = self.stored(tenant.id)  # maybe an earlier generation's, whose secret goes too
        existing = before if before is not None and before.tenant_generation == tenant.generation else None
        now = self._clock.now()
        secret_name = tenant_secret_name(tenant.id, f"{self._purpose}-{token_hex(4)}")
        self._secrets.set(secret_name, secret)
        doc = self._document.model_validate(
            {
                **fields,
                "tenant": tenant.id,
                "tenant_generation": tenant.generation,
                "secret_name": secret_name,
                "created_at": existing.created_at if existing else now,
                "updated_at": now,
            }
        )
        try:
            self.write(self.blob(tenant.id), doc)
        except Exception:
            self._forget_secret(secret_name)
            raise
        if before is not None:
            self._forget_secret(before.secret_name)
        replaced = existing is not None or had
        self._audit.append(tenant.id, self.kind, change="replaced" if replaced else "created", **facts(doc))
        return doc, not replaced

    def delete(self, tenant_id: str, *, audited: bool, also: Iterable[str] = ()) -> bool:
        """The document, the blobs `also` (a provider's own, such as a status), then the secret, and the spec's
        `legacy_secret` (not suppressed: a 503 while the vault is away, so it cannot outlive its tenant); `audited`:
        with the `deleted` audit entry. False when there was neither a document nor a legacy secret."""
        doc = self.stored(tenant_id)
        if doc is not None:
            for name in (self.blob(tenant_id), *also):
                self.delete_blob(name)
            self._forget_secret(doc.secret_name)
        legacy = self._legacy_secret is not None and self._secrets.delete(self._legacy_secret(tenant_id))
        found = doc is not None or legacy
        if found and audited:
            self._audit.append(tenant_id, self.kind, change="deleted")
        return found

    def tenants(self) -> list[str]:
        """Every tenant with a document: one listing."""
        with storage_errors():
            names = [blob.name for blob in self._storage.container(REGISTRY).list_blobs(name_starts_with=self.prefix)]
        return [name[len(self.prefix) : -len(".json")] for name in names if name.endswith(".json")]

    def all(self) -> list[D]:
        """Every document of this deployment (one listing, then one read each; one deleted meanwhile is skipped)."""
        docs = (self.stored(tenant_id) for tenant_id in self.tenants())
        return [doc for doc in docs if doc is not None]

    # -- plumbing a provider shares for its own documents ------------------------------------------------

    def write(self, name: str, doc: BaseModel) -> None:
        with storage_errors():
            self._storage.container(REGISTRY).upload_blob(
                name, doc.model_dump_json().encode(), overwrite=True, content_settings=JSON_CONTENT
            )

    def delete_blob(self, name: str) -> None:
        with contextlib.suppress(ResourceNotFoundError), storage_errors(ResourceNotFoundError):
            self._storage.container(REGISTRY).delete_blob(name)

    def _forget_secret(self, name: str) -> None:
        with contextlib.suppress(StorageUnavailable):
            self._secrets.delete(name)
