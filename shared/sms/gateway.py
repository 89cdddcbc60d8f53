"""Sending one message through the tenant's Twilio account, with the `twilio` library.

Twilio's answers are mapped so that a caller knows what to do, and never learn more than Twilio's error code: a
refusal (4xx: an invalid number, an unverified sender, a recipient who opted out at Twilio) is a 422 carrying
`twilio_code`, since sending again will not help; Twilio's rate limit (429), its own failures (5xx) and no answer
in time are a 503 with Retry-After, as the message was not accepted. Twilio's error messages quote the number, so
they are never passed on, nor logged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException  # type: ignore[import-untyped]  # twilio ships no type information
from twilio.http.http_client import TwilioHttpClient  # type: ignore[import-untyped]  # twilio ships no type information
from twilio.rest import Client  # type: ignore[import-untyped]  # twilio ships no type information

from shared.core.errors import PackCloudError, Unprocessable
from shared.registry.sms_account import SmsAccountIn

log = logging.getLogger("packcloud.sms")
TIMEOUT_S = 10.0
# Raised before a request is sent: the connection was refused or could not be made (not one lost while waiting).
_REFUSED = requests.exceptions.ProxyError | requests.exceptions.SSLError
RETRY_AFTER_S = 5


class SmsProviderUnavailable(PackCloudError):
    """Twilio did not take the message. `outcome_unknown`: the request may have reached Twilio (no answer in
    time, a connection lost after sending), so the message may have been sent all the same."""

    status = 503

    def __init__(self, detail: str, *, outcome_unknown: bool = False) -> None:
        super().__init__("sms_provider_unavailable", detail, retry_after=RETRY_AFTER_S)
        self.outcome_unknown = outcome_unknown


@dataclass(frozen=True)
class Outgoing:
    to: str
    body: str
    status_callback: str


@dataclass(frozen=True)
class Sent:
    sid: str
    status: str
    from_number: str | None


class TwilioGateway:
    """One HTTP client (a connection pool) for every tenant's account; each send names its own credentials."""

    def __init__(self, http_client: TwilioHttpClient | None = None) -> None:
        self._http = http_client or TwilioHttpClient(timeout=TIMEOUT_S)

    def send(self, account: SmsAccountIn, message: Outgoing) -> Sent:
        user, password = account.sending_credentials()
        client = Client(user, password, account_sid=account.account_sid, http_client=self._http)
        sender = (
            {"messaging_service_sid": account.messaging_service_sid}
            if account.messaging_service_sid
            else {"from_": account.from_number}
        )
        try:
            created = client.messages.create(
                to=message.to, body=message.body, status_callback=message.status_callback, **sender
            )
        except TwilioRestException as error:
            raise _refusal(error) from None
        except (requests.RequestException, TwilioException) as error:
            log.warning("Twilio did not answer: %s", type(error).__name__)
            # Only a connection never made is sure not to have sent anything.
            unknown = not isinstance(error, requests.ConnectTimeout | _REFUSED)
            raise SmsProviderUnavailable(
                "Twilio did not answer in time, retry later", outcome_unknown=unknown
            ) from None
        return Sent(sid=str(created.sid), status=str(created.status or "queued"), from_number=created.from_)


def _refusal(error: TwilioRestException) -> PackCloudError:
    code = error.code if isinstance(error.code, int) else None
    log.info("Twilio answered %s (Twilio error %s)", error.status, code)
    if error.status == 429:
        return SmsProviderUnavailable("Twilio is rate limiting this account, retry later")
    if error.status >= 500 or error.status < 400:
        return SmsProviderUnavailable("Twilio is unavailable, retry later")
    detail = f"Twilio refused the message (Twilio error {code})" if code else "Twilio refused the message"
    return Unprocessable("sms_refused", detail, twilio_status=error.status, twilio_code=code)
