"""The tenant's SendGrid Event Webhook verification key: what it must be, and where it is kept.

It is kept as every tenant credential is (shared/storage/tenant_credentials.py): the document
`registry/email/keys/<tenant>.json` names a secret in the secret store of the tenant's region (where its e-mail events
arrive) under a name never used before (`pc-<tenant>--sendgrid-key-<random>`), and the tenant generation it was given
for: a tenant deleted and created again has no key until one is given again, and a replaced key's secret goes. The
key is public (SendGrid shows it to anyone with access to the account's mail settings), but it decides which requests
count as SendGrid's, so only the secret store holds it, like every credential.

A key given before keys had documents is a secret alone under the fixed name `legacy_key_secret` (without a
generation: it always went with its tenant's deletion). It is read, for the tenant of that id, until the key is given
again (then it goes, and the key is kept as above) or deleted.
"""

from __future__ import annotations

import contextlib

from cryptography.hazmat.primitives.asymmetric import ec
from sendgrid.helpers.eventwebhook import EventWebhook  # type: ignore[import-untyped]  # sendgrid ships no types

from shared.core.clock import Clock
from shared.core.errors import StorageUnavailable
from shared.storage.audit import AuditLog
from shared.storage.blobs import Storage
from shared.storage.secrets import SecretStore, tenant_secret_name
from shared.storage.tenant_credentials import CredentialDocument, CredentialSpec, TenantCredentials, TenantRef

# The name of the credential in a registration of the `email` pack (and, before documents, of the key's secret).
VERIFICATION_KEY_CREDENTIAL = "sendgrid-verification-key"
MAX_KEY_CHARS = 1024
AUDIT_KIND = "email_events_key"
EMAIL_KEYS_PREFIX = "email/keys/"


def legacy_key_secret(tenant: str) -> str:
    """The one secret a key was kept in before keys had documents (read, and deleted, still)."""
    return tenant_secret_name(tenant, VERIFICATION_KEY_CREDENTIAL)


def parse_verification_key(text: str) -> EventWebhook:
    """SendGrid's verifier for this key (base64 DER of a P-256 public key, as the mail settings show it), or a
    ValueError that says what is wrong, never the value."""
    compact = "".join(text.split())
    if not 1 <= len(compact) <= MAX_KEY_CHARS or not compact.isascii():
        raise ValueError(f"the verification key must be 1 to {MAX_KEY_CHARS} base64 characters")
    try:
        verifier = EventWebhook(compact)
    except (ValueError, TypeError):
        # cryptography's messages can quote the key material: only the kind of problem is told.
        raise ValueError("the verification key is not a base64 public key as SendGrid shows it") from None
    if not isinstance(verifier.public_key, ec.EllipticCurvePublicKey):
        raise ValueError("the verification key must be an elliptic-curve (ECDSA) public key")
    return verifier


class VerificationKeyDoc(CredentialDocument):
    """As stored: which secret holds the key, for which generation of the tenant; nothing else to say."""


EMAIL_KEYS = CredentialSpec(
    VerificationKeyDoc, EMAIL_KEYS_PREFIX, purpose="sendgrid-key", audit=AUDIT_KIND, legacy_secret=legacy_key_secret
)


class VerificationKeyStore:
    """The keys of this region's tenants; one of the tenant credential stores, so a key goes with its tenant."""

    def __init__(self, storage: Storage, secrets: SecretStore, audit: AuditLog, clock: Clock) -> None:
        self._secrets = secrets
        self._docs = TenantCredentials(storage, secrets, audit, clock, EMAIL_KEYS)

    def get(self, tenant: TenantRef) -> str | None:
        """The key given to this generation of the tenant (a document's; else one kept in the earlier layout)."""
        doc, documented = self._docs.current(tenant)
        if doc is not None:
            return self._docs.secret(doc)
        if documented:
            return None  # an earlier generation's: a document was written, so no earlier-layout key is left
        return self._secrets.get(legacy_key_secret(tenant.id))

    def put(self, tenant: TenantRef, text: str) -> bool:
        """Checked (ValueError naming the problem, never the value), then kept; True when the tenant had none."""
        parse_verification_key(text)
        legacy = self._docs.stored(tenant.id) is None and self._secrets.get(legacy_key_secret(tenant.id)) is not None
        _, created = self._docs.put(tenant, "".join(text.split()), {}, had=legacy)
        if legacy:
            with contextlib.suppress(StorageUnavailable):  # best effort: named by no document, read no more
                self._secrets.delete(legacy_key_secret(tenant.id))
        return created

    def delete(self, tenant_id: str) -> bool:
        """The document and its secret, and a key kept in the earlier layout; audited. False when there was none."""
        return self._docs.delete(tenant_id, audited=True)

    def forget(self, tenant_id: str) -> None:
        """With its tenant (shared/services.py `forget_tenant_credentials`)."""
        self.delete(tenant_id)
