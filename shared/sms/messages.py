"""PowerSMS: messages sent through the tenant's Twilio account, their status callbacks, and inbound messages.

Every message and every status change is a record of the tenant's `sms` dataset (only its declared fields, the
dataset's retention, delivered by /sync or into Dataverse like every record), tagged with the keyed hash of the
other party's number: the recipient going out, the sender coming in. A status callback is a record of its own
(an event, `direction` outbound with the new `status`), not an update of the sent one: records are never
rewritten, and Dynamics 365 orders the events by `occurred_at`. The Dynamics 365 activity a message belongs to
travels in the status callback URL (`?activity_id=`), which Twilio's signature covers.

The rules of a send, in order: the account is configured (409), the recipient has not opted out (409), every
declared field fits (422), the Idempotency-Key was not used (its earlier answer), then Twilio (422, 503), then
the record. An inbound STOP (or a synonym) keeps an opt-out for the number; START removes it (keywords.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.capture.store import CaptureStore, Target
from shared.capture.subjects import SMS_PARTY, subject_tag
from shared.core.clock import Clock
from shared.core.errors import Conflict, PackCloudError
from shared.core.fieldtypes import InvalidValue, normalise
from shared.core.idempotency import check_idempotency_key
from shared.core.settings import Settings
from shared.registry.sms_account import SmsAccountIn, SmsAccounts
from shared.sms.gateway import Outgoing, SmsProviderUnavailable, TwilioGateway
from shared.sms.keywords import keyword_of
from shared.sms.state import OptOuts, SendMarkers
from shared.sms.webhooks import Webhook, parse_form, require_fields, verify
from shared.storage.blobs import Storage

MAX_SMS_BODY = 1600  # Twilio's limit for one message (it splits it into segments)
STALE_SEND = timedelta(minutes=2)


def _e164(value: str) -> str:
    try:
        return str(normalise("phone", value))
    except InvalidValue:
        raise ValueError("must be an E.164 number (+ and 7 to 15 digits)") from None


class SendRequest(BaseModel):
    """`POST /api/sms/{tenant}/{dataset}/messages`."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    to: str = Field(max_length=32, description="the recipient, E.164")
    body: str = Field(min_length=1, max_length=MAX_SMS_BODY)
    activity_id: UUID | None = Field(default=None, description="the Dynamics 365 activity the message belongs to")

    _to = field_validator("to")(_e164)


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


class SmsService:
    def __init__(
        self,
        capture: CaptureStore,
        storage: Storage,
        accounts: SmsAccounts,
        gateway: TwilioGateway,
        settings: Settings,
        clock: Clock,
    ) -> None:
        self._capture = capture
        self._accounts = accounts
        self._gateway = gateway
        self._settings = settings
        self._clock = clock
        self._master = settings.master_key.get_secret_value()
        self._optouts = OptOuts(storage)
        self._markers = SendMarkers(storage, self._master)

    def public_base(self) -> str | None:
        """The API base URL (…/api) Twilio reaches this region at: PACKCLOUD_REGION_URLS of this region."""
        url = self._settings.region_url(self._settings.region)
        return url.rstrip("/") if url else None

    def party(self, tenant: str, number: str | None) -> str | None:
        """The keyed hash of an E.164 number (the `sub` tag and state name), None for anything else."""
        if not number:
            return None
        try:
            return subject_tag(self._master, tenant, SMS_PARTY, number)
        except InvalidValue:
            return None

    # ----------------------------------------------------------------------------------------------- send

    def send(self, target: Target, request: SendRequest, idempotency_key: str | None) -> tuple[dict[str, Any], bool]:
        """(the answer, whether it is the earlier answer to the same Idempotency-Key)."""
        key = check_idempotency_key(idempotency_key) if idempotency_key else None
        account = self._account(target)
        public = self.public_base()
        if public is None:
            raise SmsProviderUnavailable("this deployment has no public URL for Twilio's status callbacks")
        party = self.party(target.tenant.id, request.to)
        assert party is not None  # `to` is E.164 (SendRequest)
        if self._optouts.opted_out(target, party):
            raise Conflict("opted_out", "the recipient opted out (texted STOP); only their START allows messages again")
        now = self._clock.now()
        values: dict[str, object] = {
            "direction": "outbound",
            "from": account.from_number,
            "to": request.to,
            "body": request.body,
            "status": "accepted",
            "activity_id": str(request.activity_id) if request.activity_id else None,
            "occurred_at": _iso(now),
        }
        self._capture.prepare(target, values)  # every declared field fits, before anything is sent
        if key is not None:
            earlier = self._markers.claim(target, key, party, now)
            if earlier is not None:
                return self._earlier(earlier, now), True
        callback = f"{public}/sms/status/{target.tenant.id}/{target.dataset.id}"
        if request.activity_id:
            callback += f"?activity_id={request.activity_id}"
        try:
            sent = self._gateway.send(account, Outgoing(to=request.to, body=request.body, status_callback=callback))
        except SmsProviderUnavailable as error:
            if key is not None and error.outcome_unknown:
                self._markers.unknown(target, key, party, now)  # Twilio may have it: a retry must not send again
            elif key is not None:
                self._markers.release(target, key)
            raise
        except PackCloudError:
            if key is not None:
                self._markers.release(target, key)  # refused by Twilio: nothing was sent, a retry may send
            raise
        values["status"] = sent.status
        values["from"] = sent.from_number or account.from_number
        record = self._capture.prepare(target, values, lenient=True, meta={"event": "sent", "message_sid": sent.sid})
        answer = {"id": record.record.id, "sid": sent.sid, "status": sent.status}
        if key is not None:
            self._markers.done(target, key, party, now, answer)
        self._capture.commit(target, record.record, subject=party)
        return answer, False

    def _account(self, target: Target) -> SmsAccountIn:
        account = self._accounts.get(target.tenant)
        if account is None:
            raise Conflict("no_sms_account", "the tenant has no Twilio account configured (PUT .../sms)")
        return account

    @staticmethod
    def _earlier(marker: dict[str, Any], now: datetime) -> dict[str, Any]:
        if marker.get("state") == "sent" and isinstance(marker.get("answer"), dict):
            return dict(marker["answer"])
        started = datetime.fromisoformat(str(marker.get("at")))
        if marker.get("state") == "sending" and now - started <= STALE_SEND:
            raise Conflict("send_in_progress", "the same message is being sent, retry shortly", retry_after=2)
        # The attempt stopped, or Twilio did not answer, between asking and hearing back: sending again could send
        # the message twice.
        raise Conflict(
            "send_outcome_unknown",
            "an earlier attempt with this Idempotency-Key stopped mid-send; its status callback tells whether "
            "Twilio took it. Use a new key to send again",
        )

    # ------------------------------------------------------------------------------------------- webhooks

    def _webhook(self, tenant: str, dataset: str, hook: Webhook) -> tuple[Target, dict[str, str]]:
        target = self._capture.resolve(tenant, dataset, "sms")
        form = parse_form(hook.body, hook.headers.get("content-type"), self._settings.max_body_bytes)
        verify(hook, form, self._accounts.get(target.tenant), self.public_base())
        return target, form

    def status(self, tenant: str, dataset: str, hook: Webhook) -> str:
        """A status callback: one record (the new status of a message this dataset sent); its id."""
        target, form = self._webhook(tenant, dataset, hook)
        require_fields(form, ("MessageSid", "MessageStatus"), "invalid_status_callback")
        values = {
            "direction": "outbound",
            "from": form.get("From"),
            "to": form.get("To"),
            "status": form["MessageStatus"],
            "error_code": form.get("ErrorCode") or None,
            "activity_id": _activity(hook.query),
            "occurred_at": _iso(self._clock.now()),
        }
        meta = {"event": "status", "message_sid": _sid(form["MessageSid"])}
        record = self._capture.prepare(target, values, lenient=True, meta=meta).record
        self._capture.commit(target, record, subject=self.party(target.tenant.id, form.get("To")))
        return record.id

    def inbound(self, tenant: str, dataset: str, hook: Webhook) -> str:
        """An inbound message: one record; STOP and START change the sender's opt-out. Its id."""
        target, form = self._webhook(tenant, dataset, hook)
        require_fields(form, ("MessageSid", "From"), "invalid_inbound_message")
        if "Body" not in form:
            require_fields(form, ("Body",), "invalid_inbound_message")
        text = form["Body"]
        spec = target.dataset.field("body")
        now = self._clock.now()
        values = {
            "direction": "inbound",
            "from": form["From"],
            "to": form.get("To"),
            # Kept up to the declared length only: the controller decided how much of a message it needs.
            "body": text[: spec.max_length] if spec is not None and spec.max_length else text,
            "status": form.get("SmsStatus") or "received",
            "occurred_at": _iso(now),
        }
        keyword = keyword_of(text)
        meta: dict[str, Any] = {"event": "inbound", "message_sid": _sid(form["MessageSid"])}
        if keyword is not None:
            meta["keyword"] = keyword
        record = self._capture.prepare(target, values, lenient=True, meta=meta).record
        party = self.party(target.tenant.id, form["From"])
        if party is not None and keyword == "opt_out":
            self._optouts.opt_out(target, party, now, keyword)
        elif party is not None and keyword == "opt_in":
            self._optouts.opt_in(target, party)
        self._capture.commit(target, record, subject=party)
        return record.id


def _activity(query: str) -> str | None:
    try:
        values = parse_qs(query, max_num_fields=10).get("activity_id", []) if query else []
        return str(UUID(values[0])) if len(values) == 1 else None
    except ValueError:
        return None


def _sid(value: str) -> str | None:
    """Twilio's message SID (SM/MM + 32 hex digits), or None: meta holds nothing a caller made up."""
    return value if len(value) == 34 and value[:2] in ("SM", "MM") and value[2:].isalnum() else None
