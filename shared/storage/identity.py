"""The app's identity in Azure: its user-assigned managed identity (or a developer's login, via the chain)."""

from __future__ import annotations

from typing import Any

from shared.core.settings import Settings


def app_credential(settings: Settings) -> Any:
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(managed_identity_client_id=settings.managed_identity_client_id)


def async_app_credential(settings: Settings) -> Any:
    """The same identity for the aio clients (shared/storage/aio_blobs.py), which need azure.identity's aio
    credentials: a sync credential would fetch its tokens on the event loop, blocking it."""
    from azure.identity.aio import DefaultAzureCredential

    return DefaultAzureCredential(managed_identity_client_id=settings.managed_identity_client_id)
