"""What happens to a tenant's datasets, told to whoever listens: the DPO's webhook (shared/dpo/).

The code where things happen (the registry, the purge, delivery, data-subject requests) sits below the
notifications in the layers, so it is handed an `Events` and knows nothing of webhooks. Facts must hold no
personal value: ids, counts, field names, codes and keyed hashes only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

DATASET_DECLARED = "dataset.declared"
DATASET_CHANGED = "dataset.changed"
DATASET_DELETED = "dataset.deleted"
SUBJECT_EXPORTED = "subject.exported"
SUBJECT_ERASED = "subject.erased"
PURGE_FAILED = "purge.failed"
PURGE_PAST_RETENTION = "purge.past_retention"
DELIVERY_STOPPED = "delivery.stopped"
AUDIT_VERIFICATION_FAILED = "audit.verification_failed"
WEBHOOK_TEST = "webhook.test"

EVENT_TYPES = (
    DATASET_DECLARED,
    DATASET_CHANGED,
    DATASET_DELETED,
    SUBJECT_EXPORTED,
    SUBJECT_ERASED,
    PURGE_FAILED,
    PURGE_PAST_RETENTION,
    DELIVERY_STOPPED,
    AUDIT_VERIFICATION_FAILED,
    WEBHOOK_TEST,
)


class Events(Protocol):
    def emit(self, scope: str, kind: str, facts: Mapping[str, Any]) -> None:
        """Tell the tenant `scope` (or every tenant, for the deployment-wide scope `_system`) that `kind` happened.
        Never raises: what happened has happened, whether or not it can be told."""
        ...


class NoEvents:
    """For code run without listeners (tests of other parts, dry runs)."""

    def emit(self, scope: str, kind: str, facts: Mapping[str, Any]) -> None:
        return None


NO_EVENTS = NoEvents()
