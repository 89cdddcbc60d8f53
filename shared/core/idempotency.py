"""The one Idempotency-Key rule of every route that takes one (auto-number, web forms).

8 to 200 of `A-Z a-z 0-9 . _ : -`. Why this rule, of the two there were (auto-number: 1 to 200 printable
characters; web form: 8 to 128 of these):
- What real clients send passes: UUIDs with or without hyphens (the web-form snippet's submission id, .NET's
  `Guid.ToString()` of the documented plug-in), hex or base64url tokens, ULIDs, `entity:id` compositions, up to
  200 characters for long compositions. Every key the two old rules' tests send is valid under it.
- At least 8 characters: a retry with the same key gets the first answer, so two clients choosing the same short
  key by chance (`1`) would get each other's numbers or submission. Both routes scope keys to one tenant and one
  sequence or dataset, which makes such a collision rare, not impossible.
- Only token characters: a key never holds spaces, quotes, control or non-ASCII characters, so it reads the
  same through every proxy and HTTP library, and can never look like something else in a header.
A key is only ever stored as a keyed hash, so its length and characters change nothing in storage.
"""

from __future__ import annotations

import re

from shared.core.errors import BadRequest

IDEMPOTENCY_KEY_PATTERN = r"^[A-Za-z0-9._:-]{8,200}$"
_IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)


def check_idempotency_key(key: object) -> str:
    """The key, or a 400 that says the rule (never the key)."""
    # fullmatch on str only: re's $ would accept a trailing newline.
    if not isinstance(key, str) or _IDEMPOTENCY_KEY.fullmatch(key) is None:
        raise BadRequest("invalid_idempotency_key", "Idempotency-Key must be 8 to 200 letters, digits or . _ : -")
    return key
