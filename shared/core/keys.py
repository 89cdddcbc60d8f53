"""Keys: tenant API keys (stored only as hashes), and per-tenant keys derived from the master key.

Deriving the signing and subject-hash keys with HMAC from one master key kept in Key Vault means no
per-tenant secret is ever written to storage, and a tag value cannot be reversed by guessing subjects.
The signing key also takes the tenant's generation (random, fixed when the tenant is created) and its
version (raised by each rotation), so a deleted and re-created tenant shares no key with its predecessor.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

API_KEY_PREFIX = "pck_"


GENERATION_PATTERN = r"^(|[0-9a-f]{16})$"


def new_generation() -> str:
    """A random id fixed when a tenant or dataset is created, new whenever it is created again."""
    return secrets.token_hex(8)


# The subject-hash key (subject_hash below) stays per tenant id, not per generation: records that a stale
# instance stored for a deleted generation (until its registry cache expired) must still be found by an
# erasure request made to the tenant created after it. That hash is never handed out as a credential, so
# sharing it across generations gives nothing away; the signing key, which is handed out, is per generation.


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    # API keys carry 256 random bits, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def api_key_matches(presented: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_api_key(presented), stored_hash)


def derive_key(master_key: str, purpose: str, tenant: str, version: int = 1) -> bytes:
    message = f"packcloud|{purpose}|{tenant}|v{version}".encode()
    return hmac.new(master_key.encode("utf-8"), message, hashlib.sha256).digest()


def signing_key(master_key: str, tenant: str, generation: str, version: int) -> bytes:
    # A tenant stored before generations existed has generation "": its key stays the one derived from the
    # tenant id alone, so the links it has already sent keep counting. Every tenant created since has a
    # random generation, which a tenant id cannot contain ("|"), so the two kinds of message never meet.
    scope = f"{tenant}|g{generation}" if generation else tenant
    return derive_key(master_key, "pixel-signing", scope, version)


def signing_key_text(master_key: str, tenant: str, generation: str, version: int) -> str:
    return signing_key(master_key, tenant, generation, version).hex()


def subject_hash(master_key: str, tenant: str, subject: str) -> str:
    """Keyed hash of a data subject's identifier: finds one person's records without a scan."""
    key = derive_key(master_key, "subject-hash", tenant)
    normalised = subject.strip().casefold().encode("utf-8")
    return hmac.new(key, normalised, hashlib.sha256).hexdigest()[:40]
