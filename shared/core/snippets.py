"""The scripts customers' pages embed, configured on the way out."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path


@cache
def _source(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def render_script(path: Path, config: dict[str, object]) -> str:
    """The script at `path` (kept next to its capability) with its configuration in place of the /*CONFIG*/{} marker."""
    # json.dumps output is safe inside a script: escape "<" so "</script>" can never appear.
    return _source(path).replace("/*CONFIG*/{}", json.dumps(config).replace("<", "\\u003c"))
