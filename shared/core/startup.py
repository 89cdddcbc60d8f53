"""The app's import, made without the cyclic garbage collector and then frozen out of its reach.

Importing `function_app` makes about 130,000 objects (modules, classes, validators, compiled schemas) that live
as long as the instance. Collecting while they are made finds almost nothing to free (under 2,000 objects of
classes made and dropped, about 0.4 MB) yet cost about 40 ms of a cold start's 500, measured by
`bench/cold_start.py`; and every later full collection would walk them all again. This is the pattern the `gc`
module documents for long-lived start-up objects: collector off early, `gc.freeze()` once they are made, collector
back on.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def long_lived_objects() -> Iterator[None]:
    """Run the block with the collector off, then freeze what exists and turn the collector back on (as it was).

    On an error the collector is turned back on all the same, and nothing is frozen: a failed start-up keeps no
    garbage for good."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
        gc.freeze()
    finally:
        if was_enabled:
            gc.enable()
