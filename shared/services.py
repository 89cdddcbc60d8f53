"""The process-wide services a function uses, built once on first use (not at import)."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from shared.blobs import Storage
from shared.capture import CaptureStore
from shared.clock import Clock, SystemClock
from shared.registry import Registry
from shared.settings import Settings, get_settings


@dataclass(frozen=True)
class Services:
    settings: Settings
    clock: Clock
    storage: Storage
    registry: Registry
    capture: CaptureStore

    @classmethod
    def build(cls, settings: Settings, clock: Clock | None = None, storage: Storage | None = None) -> Services:
        clock = clock or SystemClock()
        storage = storage or Storage.from_settings(settings)
        registry = Registry(storage, clock, settings.region, settings.registry_cache_ttl_seconds)
        return cls(settings, clock, storage, registry, CaptureStore(storage, registry, settings, clock))


_lock = threading.Lock()
_services: Services | None = None


def get_services() -> Services:
    global _services
    if _services is None:
        with _lock:
            if _services is None:
                _services = Services.build(get_settings())
    return _services
