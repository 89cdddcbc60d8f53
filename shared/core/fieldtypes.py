"""Validation and normalisation of one captured value by its declared type.

Reasons never quote the value: a value may be personal data, and reasons reach logs and callers.
"""

from __future__ import annotations

import ipaddress
import math
import re
from datetime import UTC, date, datetime
from typing import Literal, get_args
from urllib.parse import urlsplit

import phonenumbers
from email_validator import EmailNotValidError, validate_email

FieldType = Literal[
    "string", "email", "phone", "url", "integer", "number", "boolean", "date", "datetime", "choice", "ip"
]
FIELD_TYPES: tuple[str, ...] = get_args(FieldType)
LENGTH_TYPES = frozenset({"string", "email", "phone", "url"})
DEFAULT_MAX_LENGTH = {"string": 1024, "email": 254, "phone": 32, "url": 2048}

StoredValue = str | int | float | bool

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
# What a person types for a phone number: digits, one leading +, and the usual separators. Letters (vanity
# numbers, "ext.") are refused rather than read: E.164 has no room for an extension.
_PHONE_TEXT = re.compile(r"[0-9+\s().\-/]{1,64}")
_PHONE_NOISE = re.compile(r"[\s().\-/]")
# The regions whose national formats libphonenumber knows (ISO 3166 alpha-2), for a phone field's default_region.
PHONE_REGIONS = frozenset(phonenumbers.SUPPORTED_REGIONS)
_INTEGER = re.compile(r"[+-]?[0-9]{1,18}")
_LARGEST_INTEGER = 10**18 - 1
# ASCII only and of bounded length: float() alone also reads "١٢", "1_000" and a thousand digits.
_DECIMAL = re.compile(r"[+-]?(?:[0-9]{1,40}(?:\.[0-9]{0,40})?|\.[0-9]{1,40})(?:[eE][+-]?[0-9]{1,4})?")


class InvalidValue(ValueError):
    """The value does not fit its declared type; the message is the reason."""


def truncate_ip(value: str) -> str:
    """IPv4 to /24, IPv6 to /48: enough for coarse location, no longer identifies one device."""
    address = ipaddress.ip_address(value.strip())
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False).network_address)


def _text(raw: object) -> str:
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise InvalidValue("must be text")
    text = str(raw).strip()
    try:
        # JSON can carry a lone surrogate: not text, and neither storable nor hashable as UTF-8.
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidValue("is not valid text") from None
    return text


def normalise(
    field_type: str,
    raw: object,
    *,
    max_length: int | None = None,
    options: tuple[str, ...] = (),
    default_region: str | None = None,
) -> StoredValue:
    """The value as stored, or InvalidValue with the reason. `default_region` (phone only) reads national
    numbers as that region's."""
    if field_type in LENGTH_TYPES:
        text = _text(raw)
        limit = max_length or DEFAULT_MAX_LENGTH[field_type]
        if len(text) > limit:
            raise InvalidValue(f"longer than {limit} characters")
        if field_type == "string":
            return text
        if field_type == "email":
            return _email(text)
        if field_type == "phone":
            return _phone(text, default_region)
        return _url(text)
    if field_type == "integer":
        return _integer(raw)
    if field_type == "number":
        return _number(raw)
    if field_type == "boolean":
        return _boolean(raw)
    if field_type == "date":
        return _date(_text(raw))
    if field_type == "datetime":
        return _datetime(_text(raw))
    if field_type == "choice":
        text = _text(raw)
        if text not in options:
            raise InvalidValue("is not one of the declared options")
        return text
    if field_type == "ip":
        try:
            return truncate_ip(_text(raw))
        except ValueError:
            raise InvalidValue("is not an IPv4 or IPv6 address") from None
    raise InvalidValue(f"unknown field type {field_type}")


def _email(text: str) -> str:
    try:
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError:
        raise InvalidValue("is not a valid e-mail address") from None
    return result.normalized


def _phone(text: str, default_region: str | None) -> str:
    """E.164, and a number libphonenumber knows as valid (not only well-formed) for its country."""
    # The reason shows the form, with no example digits that a submitted value could share.
    expected = "international (E.164: +, country code, number)"
    if default_region is not None:
        expected += f" or national for {default_region}"
    reason = f"is not a valid phone number: expected {expected}"
    if not _PHONE_TEXT.fullmatch(text):
        raise InvalidValue(reason)
    compact = _PHONE_NOISE.sub("", text)
    if compact.startswith("00"):
        compact = "+" + compact[2:]  # the international prefix of most of the world, wherever the form is
    if "+" in compact[1:] or (not compact.startswith("+") and default_region is None):
        raise InvalidValue(reason)
    try:
        number = phonenumbers.parse(compact, default_region)
    except phonenumbers.NumberParseException:
        raise InvalidValue(reason) from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidValue(reason)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _url(text: str) -> str:
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise InvalidValue("is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidValue("is not an http(s) URL")
    if any(ch.isspace() for ch in text):
        raise InvalidValue("is not a valid URL")
    return text


def _integer(raw: object) -> int:
    if isinstance(raw, bool):
        raise InvalidValue("must be an integer")
    if isinstance(raw, int | float) and not abs(raw) <= _LARGEST_INTEGER:
        raise InvalidValue("must be an integer of at most 18 digits")
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    if isinstance(raw, str) and _INTEGER.fullmatch(raw.strip()):
        return int(raw.strip())
    raise InvalidValue("must be an integer")


def _number(raw: object) -> int | float:
    if isinstance(raw, bool):
        raise InvalidValue("must be a number")
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str):
        text = raw.strip()
        value = float(text) if _DECIMAL.fullmatch(text) else math.nan
    else:
        value = raw if isinstance(raw, float) else math.nan
    if not math.isfinite(value):
        raise InvalidValue("must be a finite number")
    return value


def _boolean(raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str):
        lowered = raw.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    raise InvalidValue("must be true or false")


def _date(text: str) -> str:
    try:
        # Python accepts other ISO forms (20260228, 2026-W09-6); a form field means YYYY-MM-DD.
        if len(text) != 10:
            raise ValueError
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise InvalidValue("must be a date as YYYY-MM-DD") from None


def _datetime(text: str) -> str:
    try:
        parsed = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise InvalidValue("must be an ISO 8601 date and time") from None
    # A browser's datetime-local input has no offset: it is taken as UTC, and stored in UTC.
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).isoformat().replace("+00:00", "Z")
