"""The Dataverse Web API over HTTPS: tokens from Microsoft Entra ID (azure-identity), `$batch` and `WhoAmI`.

Why not the Dataverse SDK for Python (`powerplatform-dataverse-client`): it brings pandas into every instance
of the function app (a cold start and a deployment several times larger, for one `$batch` request), and it does
not wait out a 429: PackCloud must pause only the throttled tenant, for exactly its `Retry-After`, while other
tenants go on. What PackCloud sends is one request shape, built and read in shared/dataverse/odata.py, over the
`requests` connection pool the storage client already uses.

Tokens: `ClientSecretCredential` or `CertificateCredential` for the scope `{organisation URL}/.default`, cached
until shortly before they expire. A 401 gets one fresh token (a new credential, so no cache can hand back the
refused one); a second 401 means the credentials are refused for good. Nothing here logs: errors carry a code
and the step that failed, never a secret, a token or an answer's text.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import requests
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.pipeline.transport import RequestsTransport

from shared.core.settings import ENTRA_AUTHORITY
from shared.dataverse.odata import API_PATH, AnswerUnreadable, BatchAnswer, read_answer

CONNECT_TIMEOUT_S = 5
# A batch of 1,000 upserts can take Dataverse a minute or more; its own limit for one request is longer.
READ_TIMEOUT_S = 180
TOKEN_TIMEOUT_S = 30
POOL_SIZE = 32
# A token is used until this long before it expires, so that a batch never starts with one about to lapse.
TOKEN_MARGIN_S = 300
# Microsoft Entra error codes that say the application's credentials (or the organisation as a resource) are
# refused: retrying changes nothing until someone changes the target.
REFUSED_CREDENTIALS = ("invalid_client", "unauthorized_client", "AADSTS7000215", "AADSTS7000222", "AADSTS700016")
UNKNOWN_TENANT = ("AADSTS90002", "invalid_tenant")
UNKNOWN_RESOURCE = ("AADSTS500011", "invalid_resource", "invalid_scope")

Step = Literal["token", "organization_url", "permission"]
CredentialKind = Literal["client_secret", "certificate"]


class DeliveryProblem(Exception):
    """Why a request to Dynamics 365 did not deliver: a code to store and show, and the step that failed."""

    def __init__(self, code: str, step: Step = "organization_url") -> None:
        super().__init__(code)
        self.code = code
        self.step = step


class Throttled(DeliveryProblem):
    """429: Dataverse's service protection limits; the tenant waits `retry_after` seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__("throttled")
        self.retry_after = retry_after


class CredentialsRefused(DeliveryProblem):
    """Refused for good (403, a 401 after a fresh token, Entra refusing the application): delivery stops until
    the target changes."""


class Transient(DeliveryProblem):
    """5xx, a timeout, a refused connection, an unreadable answer: retried with back-off, in the run and the next."""


@dataclass(frozen=True)
class AppCredentials:
    """What a token needs: the organisation's Entra tenant, the application, its secret or certificate (PEM)."""

    authority: str
    entra_tenant_id: str
    client_id: str
    kind: CredentialKind
    secret: str = field(repr=False)


def ca_bundle() -> str | bool:
    """The CA bundle that HTTPS connections to Entra ID and Dynamics 365 are verified against: the one the
    operator names in REQUESTS_CA_BUNDLE (as for the Azure SDK clients of the app), else certifi's. Nothing else
    is taken from the environment: no proxy could route a token elsewhere, no .netrc replace the Authorization."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or True


def make_session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.verify = ca_bundle()
    adapter = requests.adapters.HTTPAdapter(pool_connections=16, pool_maxsize=POOL_SIZE, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


class TokenSource:
    """Tokens of one target's application for one resource, cached until TOKEN_MARGIN_S before expiry. The resource
    is the organisation URL for Dataverse, or Microsoft Graph's origin (shared/attachments/graph.py): the scope is
    `{resource}/.default`."""

    def __init__(
        self,
        credentials: AppCredentials,
        resource: str,
        session: requests.Session,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._credentials = credentials
        self._scope = resource.rstrip("/") + "/.default"
        self._session = session
        self._now = now
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_on = 0.0
        self.requested = 0  # tokens asked of Entra ID: tests and benchmarks count them

    def token(self) -> str:
        with self._lock:
            if self._token is None or self._now() >= self._expires_on - TOKEN_MARGIN_S:
                self._renew()
            assert self._token is not None
            return self._token

    def fresh(self, refused: str | None = None) -> str:
        """A new token, unless another thread already replaced the refused one."""
        with self._lock:
            if self._token is None or self._token == refused:
                self._renew()
            assert self._token is not None
            return self._token

    def _renew(self) -> None:
        self.requested += 1
        try:
            access = self._credential().get_token(self._scope)
        except ClientAuthenticationError as error:
            raise token_problem(error) from None
        except (ServiceRequestError, ServiceResponseError, HttpResponseError):
            # The token endpoint did not answer, or answered an error that is not a refusal: try again later.
            raise Transient("token_unavailable", "token") from None
        self._token, self._expires_on = access.token, float(access.expires_on)

    def _credential(self) -> Any:
        from azure.identity import CertificateCredential, ClientSecretCredential

        credentials = self._credentials
        options: dict[str, Any] = {
            "authority": credentials.authority,
            # Instance discovery asks the public cloud whether the authority is one of its own: only for it.
            "disable_instance_discovery": credentials.authority != ENTRA_AUTHORITY,
            # The same pool and TLS verification as the Dataverse requests; azure-core's transport would read the
            # environment (proxies, .netrc) otherwise. One retry: the deliverer has its own back-off.
            "transport": RequestsTransport(
                session=self._session,
                session_owner=False,
                connection_verify=self._session.verify,
                connection_timeout=CONNECT_TIMEOUT_S,
                read_timeout=TOKEN_TIMEOUT_S,
            ),
            "retry_total": 1,
        }
        if credentials.kind == "certificate":
            return CertificateCredential(
                credentials.entra_tenant_id,
                credentials.client_id,
                certificate_data=credentials.secret.encode(),
                **options,
            )
        return ClientSecretCredential(credentials.entra_tenant_id, credentials.client_id, credentials.secret, **options)


def token_problem(error: ClientAuthenticationError) -> DeliveryProblem:
    """What Entra ID's refusal means, from its error code (the message itself is never kept)."""
    text = str(error.message or "")
    cause = error.__cause__
    if isinstance(cause, AzureError) and not isinstance(cause, ClientAuthenticationError):
        return Transient("token_unavailable", "token")
    if any(code in text for code in UNKNOWN_RESOURCE):
        return CredentialsRefused("organization_not_in_entra_tenant", "organization_url")
    if any(code in text for code in UNKNOWN_TENANT):
        return CredentialsRefused("entra_tenant_unknown", "token")
    if any(code in text for code in REFUSED_CREDENTIALS):
        return CredentialsRefused("credentials_refused", "token")
    return Transient("token_unavailable", "token")


class DataverseClient:
    """One organisation's Web API, with one target's tokens."""

    def __init__(self, session: requests.Session, organization_url: str, tokens: TokenSource) -> None:
        self._session = session
        self._api = organization_url.rstrip("/") + "/" + API_PATH
        self._tokens = tokens
        self.requests = 0  # requests sent to Dataverse (not Entra ID): benchmarks count them

    def batch(self, headers: dict[str, str], body: bytes, operations: int) -> BatchAnswer:
        """POST one `$batch`. CredentialsRefused after a 401 with a fresh token; Transient when nothing usable came
        back (no connection, a timeout, a redirect, an answer that does not parse)."""
        response = self._send("POST", "$batch", headers, body)
        try:
            return read_answer(response.status_code, dict(response.headers), response.content, operations)
        except AnswerUnreadable:
            raise Transient("answer_unreadable") from None

    def who_am_i(self) -> dict[str, Any]:
        """`WhoAmI`: the application user's id, its business unit and the organisation; the step that failed
        otherwise (as a DeliveryProblem)."""
        response = self._send("GET", "WhoAmI", {"Accept": "application/json", "OData-Version": "4.0"}, None)
        if response.status_code in (401, 403):
            raise CredentialsRefused("not_an_application_user", "permission")
        if response.status_code != 200:
            raise DeliveryProblem(f"dataverse_{response.status_code}", "organization_url")
        try:
            body = response.json()
            return {
                "user_id": str(body["UserId"]),
                "business_unit_id": str(body["BusinessUnitId"]),
                "organization_id": str(body["OrganizationId"]),
            }
        except (ValueError, KeyError, TypeError):
            raise DeliveryProblem("not_a_dataverse_answer", "organization_url") from None

    def request(self, method: str, path: str, headers: dict[str, str], body: bytes | None = None) -> requests.Response:
        """One Web API request under the organisation's `api/data/v9.2/` (a path, or an `@odata.nextLink` Dataverse
        gave, which must point there), with the token and the 401 handling of every request here; the caller reads
        the answer (the attachment mover: its listings, file blocks and updates)."""
        if path.startswith(self._api):
            path = path[len(self._api) :]
        elif "://" in path:
            raise Transient("foreign_link")  # a token goes to the organisation's own API and nowhere else
        return self._send(method, path, headers, body)

    def _send(self, method: str, path: str, headers: dict[str, str], body: bytes | None) -> requests.Response:
        token = self._tokens.token()
        for attempt in (1, 2):
            self.requests += 1
            try:
                response = self._session.request(
                    method,
                    self._api + path,
                    data=body,
                    headers={**headers, "Authorization": f"Bearer {token}"},
                    timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S),
                    allow_redirects=False,  # the token goes to the organisation's host and nowhere else
                )
            except requests.Timeout:
                raise Transient("timeout") from None
            except requests.RequestException:
                raise Transient("connection_failed") from None
            if 300 <= response.status_code < 400:
                raise Transient("redirected")
            if response.status_code != 401:
                return response
            if attempt == 1:
                token = self._tokens.fresh(refused=token)
        raise CredentialsRefused("unauthorized", "permission")
