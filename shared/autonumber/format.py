"""Auto-number formats in the style of Dataverse auto-number columns.

Tokens: {SEQNUM:n} (zero-padded to at least n digits, growing past it), {DATETIMEUTC:fmt} (a subset of .NET
date formats: yyyy, yy, MM, dd, HH, mm, ss, with - _ . / : and space between them), {RANDSTRING:n} (n from 1
to 6, unambiguous upper-case letters and digits); anything else is literal text. Example:
INV-{DATETIMEUTC:yyyy}-{SEQNUM:6} gives INV-2026-001000.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime

from shared.core.errors import Unprocessable, field_problems
from shared.core.numbers import ascii_int

MAX_FORMAT_LENGTH = 100
MAX_SEQNUM_WIDTH = 20
RAND_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no I, O, 0, 1: nothing to misread
_TOKEN = re.compile(r"\{([^{}]*)\}")
_DATE_PART = re.compile(r"yyyy|yy|MM|dd|HH|mm|ss|[-_./: ]")
_DATE_CODES = {"yyyy": "%Y", "yy": "%y", "MM": "%m", "dd": "%d", "HH": "%H", "mm": "%M", "ss": "%S"}


@dataclass(frozen=True)
class Literal:
    text: str


@dataclass(frozen=True)
class SeqNum:
    width: int


@dataclass(frozen=True)
class DateTimeUtc:
    strftime: str


@dataclass(frozen=True)
class RandString:
    length: int


Token = Literal | SeqNum | DateTimeUtc | RandString


def _bad(reason: str) -> Unprocessable:
    return field_problems("invalid_format", None, [{"field": "format", "reason": reason}])


def _number(token: str, argument: str, low: int, high: int) -> int:
    value = ascii_int(argument, low, high)
    if value is None:
        raise _bad(f"{{{token}:{argument}}} needs a whole number from {low} to {high}")
    return value


def _date_format(argument: str) -> str:
    parts, position = [], 0
    while position < len(argument):
        found = _DATE_PART.match(argument, position)
        if found is None:
            raise _bad(
                f"{{DATETIMEUTC:{argument}}}: '{argument[position:]}' is not one of yyyy, yy, MM, dd, HH, mm, ss"
            )
        parts.append(_DATE_CODES.get(found.group(), found.group()))
        position = found.end()
    if not parts:
        raise _bad("{DATETIMEUTC:...} needs a date format such as yyyy-MM-dd")
    return "".join(parts)


def parse_format(text: str) -> tuple[Token, ...]:
    """The tokens of a format, or a 422 that points at the offending token."""
    if not text or len(text) > MAX_FORMAT_LENGTH:
        raise _bad(f"must be 1 to {MAX_FORMAT_LENGTH} characters")
    tokens: list[Token] = []
    position = 0
    for found in _TOKEN.finditer(text):
        if found.start() > position:
            tokens.append(Literal(text[position : found.start()]))
        name, _, argument = found.group(1).partition(":")
        if name == "SEQNUM":
            tokens.append(SeqNum(_number(name, argument, 1, MAX_SEQNUM_WIDTH)))
        elif name == "DATETIMEUTC":
            tokens.append(DateTimeUtc(_date_format(argument)))
        elif name == "RANDSTRING":
            tokens.append(RandString(_number(name, argument, 1, 6)))
        else:
            raise _bad(f"unknown token {found.group()} at position {found.start()}")
        position = found.end()
    if position < len(text):
        tokens.append(Literal(text[position:]))
    for token in tokens:
        if isinstance(token, Literal) and ("{" in token.text or "}" in token.text):
            raise _bad("a brace outside a token: tokens are {SEQNUM:n}, {DATETIMEUTC:fmt}, {RANDSTRING:n}")
    seqnums = sum(isinstance(token, SeqNum) for token in tokens)
    if seqnums != 1:
        raise _bad("needs exactly one {SEQNUM:n}" if seqnums == 0 else "has more than one {SEQNUM:n}")
    return tuple(tokens)


def render(tokens: tuple[Token, ...], seq: int, when: datetime, rand_key: bytes) -> str:
    """One value. RANDSTRING is derived from a keyed hash of the number, so a retried request renders the
    same value again, and nobody without the key can predict it."""
    out = []
    for token in tokens:
        if isinstance(token, Literal):
            out.append(token.text)
        elif isinstance(token, SeqNum):
            out.append(str(seq).zfill(token.width))
        elif isinstance(token, DateTimeUtc):
            out.append(when.strftime(token.strftime))
        else:
            digest = hmac.new(rand_key, str(seq).encode(), hashlib.sha256).digest()
            out.append("".join(RAND_ALPHABET[byte % len(RAND_ALPHABET)] for byte in digest[: token.length]))
    return "".join(out)
