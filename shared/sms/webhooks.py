"""Twilio's webhooks (status callbacks, inbound messages): a bounded form body, verified with `X-Twilio-Signature`.

Twilio signs the URL it called plus the sorted form parameters with the account's Auth Token (HMAC-SHA1). The URL
checked is the one PackCloud gave Twilio, built from the configured public base URL of this region
(PACKCLOUD_REGION_URLS), never the URL the function sees: behind Front Door or another proxy the scheme, host
and port differ, and trusting forwarded headers would let a caller choose the URL it signs for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl

from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]  # twilio ships no type information

from shared.core.bodies import check_size
from shared.core.errors import BadRequest, Forbidden, UnsupportedMediaType, field_problems
from shared.registry.sms_account import SmsAccountIn

FORM = "application/x-www-form-urlencoded"
MAX_PARAMETERS = 100  # Twilio sends about 20 (more with media); far fewer than this
SIGNATURE_HEADER = "x-twilio-signature"


@dataclass(frozen=True)
class Webhook:
    path: str  # below the public base URL, from /sms/...
    query: str  # the raw query string of the request, "" when none
    body: bytes
    headers: Mapping[str, str]  # lower-case names


def parse_form(body: bytes, content_type: str | None, max_bytes: int) -> dict[str, str]:
    check_size(body, max_bytes)
    if (content_type or "").split(";")[0].strip().lower() != FORM:
        raise UnsupportedMediaType("unsupported_media_type", f"Twilio's webhooks are {FORM}")
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_PARAMETERS)
    except UnicodeDecodeError:
        raise BadRequest("invalid_form", "the body is not UTF-8") from None
    except ValueError:
        raise BadRequest("invalid_form", f"the form has more than {MAX_PARAMETERS} parameters") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise BadRequest("invalid_form", "a form parameter repeats")
        form[name] = value
    return form


def require_fields(form: Mapping[str, str], names: tuple[str, ...], code: str) -> None:
    missing = [{"field": name, "reason": "is required"} for name in names if not form.get(name)]
    if missing:
        raise field_problems(code, "the webhook lacks fields", missing, between=" ")


def verify(hook: Webhook, form: Mapping[str, str], account: SmsAccountIn | None, public_base: str | None) -> None:
    """403 unless Twilio signed this request for the public URL, with this tenant's account."""
    signature = hook.headers.get(SIGNATURE_HEADER)
    if not signature:
        raise Forbidden("invalid_signature", "the request has no X-Twilio-Signature")
    if account is None or public_base is None:
        raise Forbidden("invalid_signature", "the signature cannot be checked: no SMS account or public URL")
    url = public_base.rstrip("/") + hook.path + (f"?{hook.query}" if hook.query else "")
    validator = RequestValidator(account.auth_token.get_secret_value())
    if not validator.validate(url, dict(form), signature):
        raise Forbidden("invalid_signature", "the X-Twilio-Signature does not match the request")
    if form.get("AccountSid") != account.account_sid:
        raise Forbidden("invalid_signature", "the request is not for this tenant's Twilio account")
