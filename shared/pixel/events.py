"""Custom events through the pixel: which hits of an event are kept, and which of their properties.

A hit names its event in the `event` parameter and carries its properties as `p.<name>` parameters (the snippet's
`packcloud("event", name, {...})`). Only events the dataset declares are stored, and of their properties only the
declared ones; the others are dropped and counted like any undeclared field, never stored.
"""

from __future__ import annotations

from collections.abc import Mapping

from shared.registry.models import EVENT_FIELD, DatasetDoc

PROPERTY_PREFIX = "p."


def event_values(dataset: DatasetDoc, values: Mapping[str, str]) -> dict[str, str] | None:
    """The values of a hit with its event's properties in place, or None when its event is not declared.

    A property the event does not list keeps its `p.` name, which no field can have (field names are
    `[a-z][a-z0-9_]*`), so the store drops and counts it. A field that is some event's property is kept only
    from that event: on a page view or an e-mail link, or under its plain name, it is dropped the same way."""
    name = values.get(EVENT_FIELD)
    event = dataset.event(name) if name is not None else None
    if name is not None and event is None:
        return None
    allowed = frozenset(event.properties) if event is not None else frozenset()
    properties = dataset.event_properties
    kept: dict[str, str] = {}
    for key, value in values.items():
        if key.startswith(PROPERTY_PREFIX):
            if key[len(PROPERTY_PREFIX) :] in allowed:
                kept[key[len(PROPERTY_PREFIX) :]] = value
            else:
                kept[key] = value
        elif key in properties:
            kept[PROPERTY_PREFIX + key] = value
        else:
            kept[key] = value
    return kept
