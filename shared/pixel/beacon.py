"""The body of a beacon hit: the snippet's `navigator.sendBeacon` POST, which carries the GET query's parameters.

A beacon can only send a body a browser may post to another site without asking first, so the parameters
travel as a JSON object in a `text/plain` body (what sendBeacon sends for a string). Parsed by the bounded
parser of shared/core/bodies.py; the hit then goes through the very rules of a GET (`record_hit`).
"""

from __future__ import annotations

from shared.core.bodies import check_size, parse_json
from shared.core.errors import BadRequest, UnsupportedMediaType

# More than any dataset declares (100 fields) plus the pixel's own parameters: the rest is not a hit.
MAX_BEACON_PARAMS = 120
BEACON_MEDIA_TYPES = frozenset({"", "text/plain", "application/json"})


def beacon_params(body: bytes, content_type: str | None, max_bytes: int) -> dict[str, str]:
    """The hit's parameters, as a GET's query would give them; 413, 415 or 400 for a body that is not one."""
    check_size(body, max_bytes)
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type not in BEACON_MEDIA_TYPES:
        raise UnsupportedMediaType("unsupported_media_type", "send the hit as text/plain or application/json")
    data = parse_json(body, max_depth=2)  # an object of values; deeper is refused before parsing
    if not isinstance(data, dict):
        raise BadRequest("invalid_beacon", "the body must be a JSON object of parameters")
    if len(data) > MAX_BEACON_PARAMS:
        raise BadRequest("invalid_beacon", f"a hit carries at most {MAX_BEACON_PARAMS} parameters")
    params: dict[str, str] = {}
    for name, value in data.items():
        if value is None:
            continue
        if isinstance(value, bool):  # before int: a bool is an int in Python
            params[name] = "true" if value else "false"
        elif isinstance(value, str | int | float):
            params[name] = str(value)
        else:
            raise BadRequest("invalid_beacon", "each parameter's value must be a string, number, boolean or null")
    return params
