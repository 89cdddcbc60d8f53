"""The scripts customers' pages embed, configured on the way out."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

STATIC = Path(__file__).with_name("static")


@cache
def _source(name: str) -> str:
    return (STATIC / name).read_text(encoding="utf-8")


def render_script(name: str, config: dict[str, object]) -> str:
    """The script with its configuration in place of the /*CONFIG*/{} marker."""
    # json.dumps output is safe inside a script: escape "<" so "</script>" can never appear.
    return _source(name).replace("/*CONFIG*/{}", json.dumps(config).replace("<", "\\u003c"))
