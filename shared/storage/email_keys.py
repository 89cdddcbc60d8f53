"""The tenant's SendGrid Event Webhook verification key: where it lives in the secret store and what it must be.

One fixed secret name per tenant, in the secret store of the tenant's region (where its e-mail events arrive).
The key is public (SendGrid shows it to anyone with access to the account's mail settings), but it decides
which requests count as SendGrid's, so only the secret store holds it, like every credential.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ec
from sendgrid.helpers.eventwebhook import EventWebhook  # type: ignore[import-untyped]  # sendgrid ships no types

from shared.storage.audit import AuditLog
from shared.storage.secrets import SecretStore, tenant_secret_name

# The name of the credential in a registration of the `email` pack, and of the key's secret.
VERIFICATION_KEY_CREDENTIAL = "sendgrid-verification-key"
MAX_KEY_CHARS = 1024
AUDIT_KIND = "email_events_key"


def verification_key_secret(tenant: str) -> str:
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


def store_verification_key(secrets: SecretStore, tenant: str, text: str) -> None:
    """Checked, then kept in the secret store of this region (ValueError naming the problem, never the value)."""
    parse_verification_key(text)
    secrets.set(verification_key_secret(tenant), "".join(text.split()))


class VerificationKeySecrets:
    """The tenants' keys as one of the tenant credential stores (shared/storage/tenant_credentials.py), for their
    deletion with the tenant; they are kept and read by name above (`store_verification_key`,
    shared/emailevents/)."""

    def __init__(self, secrets: SecretStore, audit: AuditLog) -> None:
        self._secrets = secrets
        self._audit = audit

    def forget(self, tenant_id: str) -> None:
        if self._secrets.delete(verification_key_secret(tenant_id)):
            self._audit.append(tenant_id, AUDIT_KIND, change="deleted")
