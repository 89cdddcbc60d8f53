"""Secrets: Azure Key Vault in Azure, a private file for local development; one small interface for both.

Registrations keep only a secret's reference (its name), never its value. Values never reach a log, an
error or a blob: this module logs nothing, and its errors name the operation, not the secret.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from shared.core.errors import StorageUnavailable
from shared.core.settings import Settings
from shared.storage.blobs import storage_errors
from shared.storage.identity import app_credential

# Key Vault secret names: letters, digits and '-', at most 127 characters.
SECRET_NAME = re.compile(r"^[0-9a-zA-Z-]{1,127}$")
MAX_SECRET_VALUE = 4096
# Key Vault's 409 inner codes for a name that is deleted, being deleted or being recovered.
DELETED_NAME_CONFLICTS = frozenset({"ObjectIsDeletedButRecoverable", "ObjectIsBeingDeleted", "ObjectIsBeingRecovered"})
SET_ATTEMPTS = 8
RECOVERY_WAIT_S = 30


class SecretsUnavailable(StorageUnavailable):
    def __init__(self, operation: str) -> None:
        super().__init__(f"the secret store could not {operation} a secret, retry later")


class SecretStore(Protocol):
    def set(self, name: str, value: str) -> None: ...
    def get(self, name: str) -> str | None: ...
    def delete(self, name: str) -> bool: ...


def check_secret_name(name: str) -> str:
    if not SECRET_NAME.fullmatch(name):
        raise ValueError("a secret name has 1 to 127 letters, digits or '-'")
    return name


def tenant_secret_name(tenant: str, purpose: str) -> str:
    """`pc-<tenant>--<purpose>`: the double dash keeps tenant and purpose apart (ids never hold '--' twice)."""
    return check_secret_name(f"pc-{tenant}--{purpose}")


def region_key_secret_name(region: str) -> str:
    """The function key of a region's deployment, which the home deployment uses to provision tenants there."""
    return check_secret_name(f"packcloud-region-{region}-function-key")


class KeyVaultSecrets:
    """Azure Key Vault through `azure-keyvault-secrets`, authenticated with the app's managed identity.

    The vault keeps a deleted secret's name (soft delete, purge protection: infra/), so writing a name that was
    deleted is answered 409. `set` then recovers the deleted secret and writes a new version, so that `set` means
    the same here as in the local file: afterwards, `get` reads the value. Registrations avoid this path for
    credentials by never reusing a name (shared/registration/engine.py): recovery brings back the deleted values as
    older versions, readable and kept for as long as the secret lives, while a name left deleted keeps them
    disabled until the vault purges them at the end of its retention.
    """

    def __init__(
        self,
        vault_url: str,
        credential: Any,
        *,
        poll_interval_s: float = 2.0,
        pause: Callable[[float], None] = time.sleep,
        **client_options: Any,
    ) -> None:
        from azure.keyvault.secrets import SecretClient

        self._client = SecretClient(vault_url=vault_url, credential=credential, **client_options)
        self._poll_interval_s = poll_interval_s
        self._pause = pause

    def set(self, name: str, value: str) -> None:
        check_secret_name(name)
        for _ in range(SET_ATTEMPTS):
            with _unavailable("store"):
                try:
                    self._client.set_secret(name, value, content_type="text/plain")
                    return
                except HttpResponseError as error:
                    reason = _conflict_reason(error)
                    if reason is None:
                        raise
            if reason == "ObjectIsDeletedButRecoverable":
                self._recover(name)
            else:  # a deletion or recovery is still under way: it ends within seconds
                self._pause(self._poll_interval_s)
        raise SecretsUnavailable("store")

    def _recover(self, name: str) -> None:
        """Recovery is asynchronous: the recovered secret reads 404 until it is done, so wait (bounded)."""
        with _unavailable("store"):
            try:
                poller = self._client.begin_recover_deleted_secret(name, _polling_interval=self._poll_interval_s)
                poller.wait(timeout=RECOVERY_WAIT_S)
            except ResourceNotFoundError:
                return  # recovered meanwhile by another writer, or its deletion not yet done: set again
            except HttpResponseError as error:
                if _conflict_reason(error) is None:
                    raise
                return
        if not poller.done():
            raise SecretsUnavailable("store")

    def get(self, name: str) -> str | None:
        with _unavailable("read"):
            try:
                return self._client.get_secret(check_secret_name(name)).value
            except ResourceNotFoundError:
                return None

    def delete(self, name: str) -> bool:
        """Deletes the secret: with purge protection on (infra/), Key Vault keeps it recoverable, disabled,
        for its soft-delete period, and nobody can read it unless it is recovered."""
        with _unavailable("delete"):
            try:
                self._client.begin_delete_secret(check_secret_name(name))
            except ResourceNotFoundError:
                return False
        return True


def _unavailable(operation: str) -> storage_errors:
    """Key Vault trouble, mapped as storage trouble is: a 503 naming the operation, never the secret."""
    return storage_errors(unavailable=functools.partial(SecretsUnavailable, operation))


def _conflict_reason(error: HttpResponseError) -> str | None:
    """The inner code of a 409 about a deleted name (Key Vault's `innererror.code`), else None."""
    if error.status_code != 409 or error.response is None:
        return None
    try:
        # The error's response is typed by what every transport has: text(), not json().
        body = json.loads(error.response.text())
        reason = body["error"]["innererror"]["code"]
    except (ValueError, KeyError, TypeError):
        return None
    return reason if reason in DELETED_NAME_CONFLICTS else None


class LocalSecrets:
    """Local development only: a JSON file readable by its owner alone (mode 0600), in the ignored .state/."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()

    def _load(self) -> dict[str, str]:
        try:
            return dict(json.loads(self._path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return {}

    def _save(self, values: dict[str, str]) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Written to a private temporary file, then renamed: never a moment with the secrets world-readable.
        handle, temporary = tempfile.mkstemp(dir=self._path.parent, prefix=".secrets-")
        try:
            os.fchmod(handle, 0o600)
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(values, out)
            os.replace(temporary, self._path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise

    def set(self, name: str, value: str) -> None:
        with self._lock:
            values = self._load()
            values[check_secret_name(name)] = value
            self._save(values)

    def get(self, name: str) -> str | None:
        with self._lock:
            return self._load().get(check_secret_name(name))

    def delete(self, name: str) -> bool:
        with self._lock:
            values = self._load()
            found = values.pop(check_secret_name(name), None) is not None
            if found:
                self._save(values)
            return found


def secret_store(settings: Settings) -> SecretStore:
    """Key Vault when its URL is set (Azure); else the local file."""
    if settings.key_vault_url is not None:
        return KeyVaultSecrets(str(settings.key_vault_url), app_credential(settings))
    return LocalSecrets(settings.local_secrets_path)
