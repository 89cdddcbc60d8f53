"""Test data and helpers that more than one test module uses, in one place so that no test imports another.

Both tiers import this module, so it starts nothing at import: storage helpers take an Azurite the
integration tier started, and what a helper needs from shared/ it imports when called.
"""

from __future__ import annotations

import asyncio
import copy
import os
import secrets
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from devenv.azurite import connection_string
from shared.geologin.locator import Location
from tests.city_db import ADDRESSES

T = TypeVar("T")

if TYPE_CHECKING:
    from devenv.azurite import Azurite
    from shared.core.clock import Clock
    from shared.core.settings import Settings
    from shared.registry.models import FieldSpec
    from shared.services import Services

ROOT = Path(__file__).resolve().parent.parent
# A function app of the local host's own tests: routes of every auth level, a timer, a setting.
DEVHOST_SAMPLE_APP = ROOT / "tests" / "devhost_sample_app"

# ---------------------------------------------------------------- keys, clients and settings

MASTER_KEY = secrets.token_urlsafe(48)
FUNCTION_KEY = secrets.token_urlsafe(24)
HOST_MASTER_KEY = secrets.token_urlsafe(24)
# A real browser's user agent: the pixel ignores HTTP libraries as bots.
BROWSER_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Safari/537.36"
# The session host's web-form limit: above what one test sends to its own tenant, low enough to reach.
FORM_RATE_PER_MINUTE = 300
EU_URL = "https://packcloud-eu.example.net/api"
US_URL = "https://packcloud-us.example.net/api"
# The unit tier's storage: port 9 (discard), where nothing answers; its guard refuses the connection anyway.
UNREACHABLE_STORAGE = connection_string(9)


def settings_values(storage_connection_string: str, region: str = "eu") -> dict[str, str]:
    """The PACKCLOUD_* environment of a test deployment whose storage is behind this connection string."""
    return {
        "PACKCLOUD_REGION": region,
        "PACKCLOUD_STORAGE_CONNECTION_STRING": storage_connection_string,
        "PACKCLOUD_MASTER_KEY": MASTER_KEY,
        "PACKCLOUD_REGION_URLS": f'{{"eu": "{EU_URL}", "us": "{US_URL}"}}',
        # The default schedule purges at minute 5 of every hour: a test host would purge in the background,
        # scanning every blob the session's tests left, at a moment no test chose. Once a year instead; the
        # tests that purge run it themselves.
        "PACKCLOUD_PURGE_SCHEDULE": "0 0 0 1 1 *",
        # The same for the delivery into Dynamics 365: the tests that deliver run it, or start a host that does.
        "PACKCLOUD_DELIVERY_SCHEDULE": "0 0 0 1 1 *",
        # And for the DPO notifications' drain: the tests that walk its retries drain themselves, on their clock.
        "PACKCLOUD_DPO_SCHEDULE": "0 0 0 1 1 *",
        "PACKCLOUD_ATTACHMENT_SCHEDULE": "0 0 0 1 1 *",
    }


def settings_env(azurite: Azurite, region: str = "eu") -> dict[str, str]:
    return settings_values(azurite.connection_string, region)


def settings_from(env: dict[str, str]) -> Settings:
    from shared.core.settings import Settings

    return Settings(**{k.removeprefix("PACKCLOUD_").lower(): v for k, v in env.items()})


def settings_for(azurite: Azurite) -> Settings:
    return settings_from(settings_env(azurite))


# ---------------------------------------------------------------- what is really in storage


def all_blobs(azurite: Azurite, container: str, prefix: str = "") -> dict[str, bytes]:
    """Every blob of a container with its content: what is really in storage."""
    from azure.core.exceptions import ResourceNotFoundError
    from azure.storage.blob import BlobServiceClient

    client = BlobServiceClient.from_connection_string(azurite.connection_string).get_container_client(container)
    try:
        return {
            blob.name: client.download_blob(blob.name).readall()
            for blob in client.list_blobs(name_starts_with=prefix or None)
        }
    except ResourceNotFoundError:
        return {}


def blob_states(azurite: Azurite, containers: tuple[str, ...], *, within: tuple[str, ...] = ()) -> dict[str, dict]:
    """Each blob's ETag, metadata and tags, listed without downloading a byte: any write, deletion or re-tagging
    shows, which is what "nothing changed" is checked against. `within`: only names containing one of these.

    Downloading every blob instead took 15 s a call late in the run, when the session's Azurite holds every test's.
    """
    from azure.core.exceptions import ResourceNotFoundError
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    states: dict[str, dict] = {}
    for container in containers:
        try:
            listed = list(service.get_container_client(container).list_blobs(include=["metadata", "tags"]))
        except ResourceNotFoundError:
            listed = []
        states[container] = {
            blob.name: (blob.etag, blob.metadata, blob.tags)
            for blob in listed
            if not within or any(part in blob.name for part in within)
        }
    return states


# ---------------------------------------------------------------- declarations

# The documented example dataset (a pixel); `variant` changes its top-level keys.
EXAMPLE: dict[str, Any] = {
    "capability": "pixel",
    "purpose": "Follow up on leads who visit the pricing page",
    "legal_basis": "consent",
    "retention_days": 14,
    "controller": {"name": "Contoso Ltd", "email": "privacy@contoso.example"},
    "dpo": {"name": "Jane Roe", "email": "dpo@contoso.example"},
    "subject_field": "visitor",
    "fields": [
        {"name": "page_url", "type": "url", "required": True, "personal": False, "max_length": 2048},
        {"name": "visitor", "type": "string", "required": False, "personal": True, "max_length": 64},
        {"name": "ip", "type": "ip", "required": False, "personal": True},
    ],
    "allowed_origins": ["https://www.contoso.example"],
}


def variant(**changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(EXAMPLE)
    doc.update(changes)
    return doc


ORIGIN = "https://www.contoso.example"
THANKS = f"{ORIGIN}/thanks"

# The contact form: one field of every type, consent and a honeypot.
FORM: dict[str, Any] = {
    "capability": "webform",
    "purpose": "Answer enquiries sent from the contact page",
    "legal_basis": "consent",
    "retention_days": 7,
    "controller": {"name": "Contoso Ltd", "email": "privacy@contoso.example"},
    "subject_field": "email",
    "fields": [
        {"name": "email", "type": "email", "required": True},
        {"name": "name", "type": "string", "max_length": 20},
        {"name": "phone", "type": "phone"},
        {"name": "website", "type": "url", "personal": False},
        {"name": "employees", "type": "integer", "personal": False},
        {"name": "budget", "type": "number", "personal": False},
        {"name": "newsletter", "type": "boolean", "personal": False},
        {"name": "start", "type": "date", "personal": False},
        {"name": "meeting", "type": "datetime", "personal": False},
        {"name": "topic", "type": "choice", "options": ["sales", "support"], "personal": False},
        {"name": "rating", "type": "integer", "personal": False},
    ],
    "allowed_origins": [ORIGIN],
    "redirect_url": THANKS,
    "honeypot_field": "fax_number",
    "consent_field": "consent",
    "consent_text_version": "contact-2026-11",
}

# A form with one e-mail field under contract, its purpose holding markup that no page may render as such.
CONTRACT_FORM = variant(
    capability="webform",
    legal_basis="contract",
    subject_field="email",
    purpose="Answer <script>alert(1)</script> enquiries",
    fields=[{"name": "email", "type": "email", "required": True}],
)

# A contact form whose subject is the phone number.
CALLBACK: dict[str, Any] = {
    **FORM,
    "legal_basis": "contract",
    "subject_field": "phone",
    "consent_field": None,
    "consent_text_version": None,
    "fields": [{"name": "phone", "type": "phone", "required": True}, {"name": "name", "type": "string"}],
}

EMAIL_EVENTS: dict[str, Any] = {
    "capability": "emailevent",
    "purpose": "Follow the delivery of e-mails sent from Dynamics 365",
    "legal_basis": "legitimate_interest",
    "retention_days": 7,
    "controller": {"name": "Contoso Ltd", "email": "privacy@contoso.example"},
    "subject_field": "email",
    "fields": [
        {"name": "event", "type": "string", "required": True},
        {"name": "email", "type": "email", "required": True},
        {"name": "occurred_at", "type": "datetime", "personal": False},
        {"name": "activity_id", "type": "string"},
    ],
}
SIGNINS: dict[str, Any] = {
    "capability": "geologin",
    "purpose": "Security monitoring of user sign-ins",
    "legal_basis": "legitimate_interest",
    "retention_days": 14,
    "controller": {"name": "Contoso Ltd", "email": "privacy@contoso.example"},
    "subject_field": "user_id",
    "fields": [
        {"name": "user_id", "type": "string", "required": True},
        {"name": "signed_in_at", "type": "datetime", "personal": False},
        {"name": "country", "type": "string"},
        {"name": "city", "type": "string"},
        {"name": "ip", "type": "ip"},
    ],
}
USER = "0f8fad5b-d9cb-469f-a165-70867728950e"
# PowerSMS (docs/sms.md): every field an sms dataset may declare.
SMS_TEXTS: dict[str, Any] = {
    "capability": "sms",
    "purpose": "Text messages with customers, synchronised with Dynamics 365",
    "legal_basis": "contract",
    "retention_days": 7,
    "controller": {"name": "Contoso Ltd", "email": "privacy@contoso.example"},
    "fields": [
        {"name": "direction", "type": "string", "required": True, "personal": False, "max_length": 16},
        {"name": "from", "type": "phone"},
        {"name": "to", "type": "phone"},
        {"name": "body", "type": "string", "max_length": 320},
        {"name": "status", "type": "string", "personal": False, "max_length": 32},
        {"name": "error_code", "type": "integer", "personal": False},
        {"name": "activity_id", "type": "string", "personal": False, "max_length": 36},
        {"name": "occurred_at", "type": "datetime", "required": True, "personal": False},
    ],
}
# Where tests/city_db.py puts its networks.
OSLO = Location("NO", "Oslo", "Oslo", 59.9139, 10.7522)
STOCKHOLM = Location("SE", "Stockholm County", "Stockholm", 59.3293, 18.0686)
SYDNEY = Location("AU", "New South Wales", "Sydney", -33.8688, 151.2093)

PIXEL: dict[str, Any] = {
    **SIGNINS,
    "capability": "pixel",
    "subject_field": None,
    "fields": [{"name": "page_url", "type": "url"}, {"name": "visitor", "type": "string"}],
    "allowed_origins": ["https://www.contoso.example"],
}

# Digits that are not ASCII: superscript, Arabic-Indic, full-width, Bengali, bold.
UNICODE_DIGITS = ["²", "١٢", "\uff15", "1²", "৩", "\U0001d7d7"]

# ---------------------------------------------------------------- data subjects

# Per field type: the spelling capture was given, another spelling of the same value a request may give,
# and a different value (someone else).
SPELLINGS: dict[str, tuple[object, str, object]] = {
    "string": ("Visitor-42", "  visitor-42 ", "visitor-43"),
    "email": ("Jane.Doe@EXAMPLE.com", "jane.doe@example.com", "john.doe@example.com"),
    "phone": ("+47 22 33 44 55", "0047 (22) 33-44-55", "+4722334456"),
    "url": ("https://www.contoso.example/p/jane", " HTTPS://www.contoso.example/p/jane", "https://x.example/"),
    "integer": (42, "0042", 43),
    "number": (2, "2.0", 2.5),
    "boolean": (True, "yes", False),
    "date": ("2026-01-02", " 2026-01-02 ", "2026-01-03"),
    "datetime": ("2026-01-02T03:04:05+02:00", "2026-01-02T01:04:05Z", "2026-01-02T03:04:05Z"),
    "choice": ("gold", " gold ", "silver"),
    "ip": ("192.0.2.77", "::ffff:192.0.2.9", "198.51.100.7"),
}


def spec(field_type: str) -> FieldSpec:
    """The subject field `who` of this type."""
    from shared.registry.models import FieldSpec

    options = ("gold", "silver") if field_type == "choice" else None
    return FieldSpec(name="who", type=field_type, options=options)  # type: ignore[arg-type]


def declaration(field_type: str) -> dict[str, Any]:
    """A dataset whose subject is `who`, of this type."""
    field = spec(field_type).model_dump(exclude_none=True)
    return variant(subject_field="who", fields=[field, {"name": "page", "type": "string", "personal": False}])


# ---------------------------------------------------------------- sign-ins


def geo_services(settings: Settings, clock: Clock, city_db: Path | None = None, **overrides: Any) -> Services:
    from shared.services import Services

    changed = settings.model_copy(update={"geo_city_db_path": city_db, **overrides})
    return Services.build(changed, clock)


def sign_in(services, tenant, where, at=None, user=USER, forwarded_for=None):
    from shared.geologin.signins import SignInRequest

    geo = services.geologins
    target = services.capture.resolve(tenant, "signins", "geologin")
    body = {"user_id": user, **({"ip": ADDRESSES.get(where, where)} if where else {})}
    if at is not None:
        body["signed_in_at"] = at.isoformat()
    return geo.sign_in(target, SignInRequest.model_validate(body), forwarded_for)


# ---------------------------------------------------------------- secrets and registration

# A secret as a provider issues one: no error, log or blob may hold it.
SECRET_VALUE = "sk_live_0123456789abcdefSECRET"

SENDGRID = "SG.sendgrid-secret-value-0123456789"
TWILIO = "twilio-token-abcdef-9876543210"
# The home deployment's registration key (what installers hold), in its secret store: never a function key.
REGISTRATION_KEY = secrets.token_urlsafe(32)


def give_registration_key(secrets_path: Path, key: str = REGISTRATION_KEY) -> None:
    """Before a home host starts: its secret store holds the registration key, as Key Vault does in Azure."""
    from shared.registration.engine import REGISTRATION_KEY_SECRETS
    from shared.storage.secrets import LocalSecrets

    LocalSecrets(secrets_path).set(REGISTRATION_KEY_SECRETS[0], key)


@contextmanager
def running_host(azurite: Azurite, **extra: str) -> Iterator[str]:
    """The local host serving function_app.py on a free port over this Azurite, with the test keys and the session
    host's web-form limit; yields the API base URL and stops the host after."""
    from devenv.azurite import free_port
    from devenv.local_host import start_local_host, stop_local_host

    port = free_port()
    env = {
        **os.environ,
        **settings_env(azurite),
        "DEVHOST_FUNCTION_KEY": FUNCTION_KEY,
        "DEVHOST_MASTER_KEY": HOST_MASTER_KEY,
        "PACKCLOUD_FORM_RATE_PER_MINUTE": str(FORM_RATE_PER_MINUTE),
        **extra,
    }
    process = start_local_host(port, env)
    try:
        yield f"http://127.0.0.1:{port}/api"
    finally:
        stop_local_host(process)


def home_host_env(azurite: Azurite, secrets_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a home (us) local host, which serves every route, the registration routes included;
    its secrets file is given the registration key first."""
    give_registration_key(secrets_path)
    return {
        **os.environ,
        **settings_env(azurite, region="us"),
        "PACKCLOUD_ROLE": "regional,registration",
        "PACKCLOUD_LOCAL_SECRETS_PATH": str(secrets_path),
        "DEVHOST_FUNCTION_KEY": FUNCTION_KEY,
        "DEVHOST_MASTER_KEY": HOST_MASTER_KEY,
        **extra,
    }


def registration(org: str, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "pack": "email",
        "contact": {"name": "Ada Admin", "email": "ada.admin@contoso.example", "phone": "+47 22 33 44 55"},
        "organization": {"name": "contoso", "id": org, "users": 25, "url": "https://contoso.crm4.dynamics.com/"},
        "region": "us",
        "credentials": {"sendgrid": SENDGRID, "twilio": TWILIO},
    }
    for key, value in changes.items():
        if "." in key:
            outer, inner = key.split(".")
            body[outer] = {**body[outer], inner: value}
        elif value is None:
            body.pop(key)
        else:
            body[key] = value
    return body


# ---------------------------------------------------------------- delivery into Dataverse

# The fake organisation's table (tests/integration/fake_dataverse.py) and the mappings that write into it.
LEADS = "leads"
RECORD_KEY = "pc_recordid"
LEAD_COLUMNS = {
    "pc_page": ("string", 2048),
    "pc_visitor": ("string", 64),
    "pc_capturedat": ("datetime", 40),
    "emailaddress1": ("string", 100),
    "lastname": ("string", 10),
    "numberofemployees": ("int", 0),
    "pc_consent": ("string", 64),
}
PIXEL_TO_LEADS = {
    "mode": "dataverse",
    "table": LEADS,
    "key": RECORD_KEY,
    "columns": {"page_url": "pc_page", "visitor": "pc_visitor"},
    "meta": {"captured_at": "pc_capturedat"},
}
FORM_TO_LEADS = {
    "mode": "dataverse",
    "table": LEADS,
    "key": RECORD_KEY,
    "columns": {"email": "emailaddress1", "name": "lastname", "employees": "numberofemployees"},
    "meta": {"consent": "pc_consent"},
}
# The pixel dataset of the examples, delivered into the leads table.
PIXEL_DELIVERED = variant(delivery=PIXEL_TO_LEADS)
FORM_DELIVERED = {**FORM, "delivery": FORM_TO_LEADS}
CLIENT_SECRET = "dv-client-secret-0123456789-SECRET"


def target_body(organization_url: str, entra_tenant: str, client: str, /, **changes: Any) -> dict[str, Any]:
    """A delivery target's body; a change to None leaves that property out."""
    body = {
        "organization_url": organization_url,
        "entra_tenant_id": entra_tenant,
        "client_id": client,
        "client_secret": CLIENT_SECRET,
    }
    body.update(changes)
    return {key: value for key, value in body.items() if value is not None}


def application_certificate(name: str = "packcloud-app", key_size: int = 2048) -> str:
    """An app registration's certificate as an admin makes one: RSA, self-signed; one PEM with key and certificate."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return (key_pem + certificate.public_bytes(serialization.Encoding.PEM)).decode()


# Tracked links (the Powers pack): every field a link dataset may declare, the contact as its subject.
ASSETS_ORIGIN = "https://assets.contoso.example"
LINKS: dict[str, Any] = {
    "capability": "link",
    "purpose": "Follow up on contacts who open the brochures we share with them",
    "legal_basis": "legitimate_interest",
    "retention_days": 10,
    "controller": {"name": "Contoso Ltd", "email": "privacy@contoso.example"},
    "subject_field": "contact_id",
    "fields": [
        {"name": "link_id", "type": "string", "personal": False},
        {"name": "contact_id", "type": "string", "max_length": 128},
        {"name": "visited_at", "type": "datetime", "personal": False},
        {"name": "target_url", "type": "url", "personal": False},
        {"name": "referrer", "type": "url"},
        {"name": "ip", "type": "ip"},
        {"name": "user_agent", "type": "string"},
    ],
    "allowed_origins": [ASSETS_ORIGIN],
}
CONTACT = "7f3c1e2a-5b6d-4e8f-9a0b-1c2d3e4f5a6b"


def run_on_own_loop(coroutine: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run` in a thread of its own: once the session's Playwright (its sync API) has started, the main
    thread has a running event loop, where asyncio.run refuses to start another."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


# ---------------------------------------------------------------- answers against openapi.yaml


def _as_json_schema(node: Any) -> Any:
    """openapi 3.0's `nullable` as JSON Schema's null type (which jsonschema_rs knows), everywhere in a schema."""
    if isinstance(node, list):
        return [_as_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _as_json_schema(value) for key, value in node.items() if key not in ("nullable", "example")}
    if node.get("nullable"):
        if "type" in out:
            out["type"] = [out["type"], "null"]
            if "enum" in out:
                out["enum"] = [*out["enum"], None]
        else:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


def documented_errors(answer: Any, route: str, method: str) -> list[str]:
    """What is wrong with a JSON answer by the schema openapi.yaml gives its route, method and status (a missing
    entry is a KeyError: an undocumented status is a finding too)."""
    import jsonschema_rs
    import yaml

    spec = yaml.safe_load((ROOT / "openapi.yaml").read_text())
    response = spec["paths"][route][method.lower()]["responses"][str(answer.status_code)]
    if "$ref" in response:
        response = spec["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    schema = response["content"]["application/json"]["schema"]
    root = {**_as_json_schema(schema), "components": _as_json_schema(spec["components"])}
    return [error.message for error in jsonschema_rs.Draft4Validator(root).iter_errors(answer.json())]


# A value no answer may repeat: the hostile bodies carry it, and a refusal must name the problem without it.
HOSTILE_MARK = "QzVx7731hostile"


def hostile_bodies(valid: dict[str, Any]) -> list[tuple[str, bytes, str]]:
    """(name, body, content type) of bodies a JSON route must refuse with a 4xx: no body, not JSON, not an
    object, NaN, nesting past any bound, a BOM, wrong types, a huge number and the valid body with a field each
    time of the wrong type. Each carries HOSTILE_MARK where a value can."""
    import json

    mark = HOSTILE_MARK
    bodies: list[tuple[str, bytes, str]] = [
        ("empty", b"", "application/json"),
        ("not json", b"{" + mark.encode(), "application/json"),
        ("array", json.dumps([valid, mark]).encode(), "application/json"),
        ("string", json.dumps(mark).encode(), "application/json"),
        ("null", b"null", "application/json"),
        ("nan", b'{"x": NaN, "y": "' + mark.encode() + b'"}', "application/json"),
        ("deep", b"[" * 20000 + b"]" * 20000, "application/json"),
        ("bom", b"\xef\xbb\xbf" + json.dumps(valid).encode(), "application/json"),
        ("latin-1", b'{"x": "' + mark.encode() + b'\xff"}', "application/json"),
        ("form", f"x={mark}".encode(), "application/x-www-form-urlencoded"),
        ("long number", b'{"x": ' + b"9" * 5000 + b"}", "application/json"),
    ]
    for name in valid:
        for kind, value in (("number", 1e308), ("object", {mark: mark}), ("list", [mark]), ("bool", True)):
            bodies.append((f"{name} as {kind}", json.dumps({**valid, name: value}).encode(), "application/json"))
    bodies.append(("unknown property", json.dumps({**valid, "extra": mark}).encode(), "application/json"))
    return bodies


# ---------------------------------------------------------------- PowerMailChimp's datasets

MAILCHIMP_MEMBERS: dict[str, Any] = {
    "capability": "mailchimp",
    "purpose": "Keep the newsletter audience in step with Dynamics 365 marketing lists",
    "legal_basis": "consent",
    "retention_days": 1,
    "controller": {"name": "Contoso Ltd", "email": "privacy@contoso.example"},
    "fields": [{"name": "fname", "type": "string", "max_length": 50}, {"name": "company", "type": "string"}],
    "mailchimp_audiences": ["a1b2c3d4e5"],
}
MAILCHIMP_EVENTS: dict[str, Any] = {
    "capability": "mailchimpevent",
    "purpose": "Bring newsletter subscriptions and campaign activity back into Dynamics 365",
    "legal_basis": "legitimate_interest",
    "retention_days": 7,
    "controller": {"name": "Contoso Ltd", "email": "privacy@contoso.example"},
    "subject_field": "email",
    "fields": [
        {"name": "event", "type": "string", "personal": False},
        {"name": "email", "type": "email"},
        {"name": "occurred_at", "type": "datetime", "personal": False},
        {"name": "list_id", "type": "string", "personal": False},
    ],
}


def in_new_interpreter(environment: dict[str, str], probe: str) -> list[str]:
    """The words `probe` prints, run from the checkout in a new interpreter with these settings on top of this
    environment: a new instance, which finds nothing loaded that this test process has."""
    import subprocess
    import sys

    from devenv.azurite import ROOT

    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env={**os.environ, **environment},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.split()
