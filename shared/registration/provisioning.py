"""Creating and deleting a tenant in the region the customer chose, from the home deployment.

The home deployment's own region is served in process; every other region through its manage API, with
that deployment's function key read from the secret store (`packcloud-region-<code>-function-key`), and a
tenant's API key is checked by the tenant's own region (`GET /api/auth/{tenant}`), never against a copy.

A region's answer is never followed to another URL: a redirect is an error (502), since following it would
send the function key or the tenant's key to wherever the redirect points.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import requests

from shared.core.errors import Forbidden, NotFound, PackCloudError, StorageUnavailable, Unauthorized, Unprocessable
from shared.core.settings import Region, Settings
from shared.dataverse.targets import TargetIn, Targets
from shared.registry.auth import authenticate_tenant, bearer_token
from shared.registry.models import Tenant, TenantIn
from shared.registry.sms_account import SmsAccountIn, SmsAccounts
from shared.registry.store import Registry
from shared.registry.tenants import delete_tenant, put_tenant
from shared.storage.audit import AuditLog
from shared.storage.email_keys import VerificationKeyStore
from shared.storage.secrets import SecretStore, region_key_secret_name

log = logging.getLogger("packcloud.provisioning")
TIMEOUT_S = (5, 15)  # connect, read
S = TypeVar("S")


class RegionUnavailable(StorageUnavailable):
    def __init__(self, region: str) -> None:
        super().__init__(f"the deployment of region {region} is unavailable, retry later", retry_after=10)


class RegionRedirected(PackCloudError):
    """A region answered with a redirect: never followed while carrying a key; its configured URL is wrong."""

    status = 502

    def __init__(self, region: str) -> None:
        super().__init__(
            "region_redirect",
            f"the deployment of region {region} answered with a redirect, which is not followed; "
            "its URL in PACKCLOUD_REGION_URLS needs correcting",
        )


@dataclass(frozen=True)
class TenantKeys:
    api_key: str
    signing_key: str


class Provisioner:
    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        audit: AuditLog,
        secrets: SecretStore,
        session: requests.Session | None = None,
        targets: Targets | None = None,
        sms_accounts: SmsAccounts | None = None,
        email_keys: VerificationKeyStore | None = None,
        mailchimp_keys: Callable[[Tenant, str], None] | None = None,
        forget_credentials: Callable[[str], None] | None = None,
    ) -> None:
        self._settings = settings
        self._registry = registry
        self._audit = audit
        self._secrets = secrets
        self._targets = targets
        self._sms_accounts = sms_accounts
        self._email_keys = email_keys
        # The tenant's Mailchimp connection is a capability's (shared/mailchimp/, a sibling layer): the composition
        # root hands the way to set it.
        self._mailchimp_keys = mailchimp_keys
        self._forget_credentials = forget_credentials
        self._session = session or requests.Session()
        # Nothing from the environment may add to these requests: a .netrc entry would replace the tenant's
        # Authorization header, a proxy setting would route the keys elsewhere.
        self._session.trust_env = False

    def create_fresh(self, region: Region, tenant: str, name: str) -> TenantKeys:
        """A new tenant with new keys; one left by an attempt that never handed its keys out is replaced
        (nobody held its keys, so it holds nothing)."""
        created = self._put(region, tenant, name)
        if created is None:
            self.delete(region, tenant)
            created = self._put(region, tenant, name)
        if created is None:
            raise RegionUnavailable(region)
        return TenantKeys(api_key=created["api_key"], signing_key=created["signing_key"])

    def update(self, region: Region, tenant: str, name: str) -> None:
        self._put(region, tenant, name)

    def give_target(self, region: Region, tenant: str, target: TargetIn) -> None:
        """The tenant's delivery target, in its region: in process here, else through the region's manage API (its
        secret travels once, over https, to that region's secret store, and is kept nowhere here)."""
        if region == self._settings.region:
            found, targets = self._here(tenant, self._targets)
            targets.put(found, target)
            return
        body = {
            "organization_url": target.organization_url,
            "entra_tenant_id": str(target.entra_tenant_id),
            "client_id": str(target.client_id),
            ("certificate" if target.kind == "certificate" else "client_secret"): target.secret_value(),
        }
        answer = self._call(region, "PUT", tenant, body, path="delivery", expected=(200, 201, 422))
        if answer.status_code == 422:
            reason = "the region refused the delivery target (its Dynamics 365 host patterns differ)"
            raise Unprocessable(
                "invalid_registration",
                f"invalid registration: delivery: {reason}",
                errors=[{"field": "delivery", "reason": reason}],
            )

    def give_sms_account(self, region: Region, tenant: str, account: SmsAccountIn) -> None:
        """The tenant's Twilio account (the `sms` pack), in its region's secret store: in process here, else through
        the region's manage API (`PUT .../sms`), as the delivery target travels."""
        if region == self._settings.region:
            found, accounts = self._here(tenant, self._sms_accounts)
            accounts.put(found, account)
            return
        body = {
            **account.model_dump(exclude_none=True, exclude={"auth_token", "api_key_secret"}),
            "auth_token": account.auth_token.get_secret_value(),
        }
        if account.api_key_secret is not None:
            body["api_key_secret"] = account.api_key_secret.get_secret_value()
        self._call(region, "PUT", tenant, body, path="sms")

    def give_mailchimp_key(self, region: Region, tenant: str, key: str) -> None:
        """The tenant's Mailchimp API key as its connection, in its region: here directly, else through the region's
        manage API (`PUT .../mailchimp`; it travels once, over https, and is kept there)."""
        if region == self._settings.region:
            found, give_key = self._here(tenant, self._mailchimp_keys)
            give_key(found, key)
            return
        self._call(region, "PUT", tenant, {"api_key": key}, path="mailchimp")

    def _here(self, tenant: str, store: S | None) -> tuple[Tenant, S]:
        """The tenant as stored now in this (home) region, and the store that keeps what it is given in process; a
        provisioner built without that store holds no such tenant either (404)."""
        found = self._registry.get_tenant(tenant, fresh=True)
        if found is None or store is None:
            raise NotFound("unknown_tenant", "no such tenant in this deployment")
        return found, store

    def give_email_key(self, region: Region, tenant: str, key: str) -> None:
        """The tenant's SendGrid verification key, in its region's secret store: here directly, else through the
        region's manage API (it travels once, over https, and is kept there)."""
        if region == self._settings.region:
            found, keys = self._here(tenant, self._email_keys)
            keys.put(found, key)  # audited as the region's manage API audits it: every credential given is
            return
        self._call(region, "PUT", tenant, {"verification_key": key}, path="email-events/key", expected=(200,))

    def delete(self, region: Region, tenant: str) -> bool:
        if region == self._settings.region:
            if self._forget_credentials is not None:
                self._forget_credentials(tenant)  # what the tenant was given (target, accounts, keys) goes with it
            else:  # a provisioner built without the composition root (tests): what it was given
                if self._email_keys is not None:
                    self._email_keys.delete(tenant)
                if self._targets is not None:
                    self._targets.delete(tenant)
                if self._sms_accounts is not None:
                    self._sms_accounts.delete(tenant)
            return delete_tenant(self._registry, self._audit, tenant)
        answer = self._call(region, "DELETE", tenant)
        return answer.status_code == 204

    def _put(self, region: Region, tenant: str, name: str) -> dict[str, Any] | None:
        """The created tenant's answer with its keys, or None when it already existed (and was updated)."""
        change = TenantIn(region=region, name=name)
        if region == self._settings.region:
            master = self._settings.master_key.get_secret_value()
            shown, created = put_tenant(self._registry, self._audit, master, tenant, change)
            return shown if created else None
        answer = self._call(region, "PUT", tenant, change.model_dump(exclude_none=True))
        return answer.json() if answer.status_code == 201 else None

    def check_tenant_key(self, region: Region, tenant: str, authorization: str | None) -> None:
        """The tenant's API key, checked where the tenant lives (its current key, whatever rotations happened):
        in process for this region, otherwise by the region itself. Unauthorized (401) or Forbidden (403)."""
        if bearer_token(authorization) is None:
            raise Unauthorized("missing_key", "send the tenant API key as 'Authorization: Bearer <key>'")
        if region == self._settings.region:
            authenticate_tenant(self._registry, tenant, authorization)
            return
        # Only the tenant's own key goes with this request; the region's function key is not needed for it.
        answer = self._request(region, "GET", f"auth/{tenant}", headers={"authorization": str(authorization)})
        if answer.status_code == 204:
            return
        if answer.status_code in (401, 403, 404, 421):
            raise Forbidden("forbidden", "the key is not valid for this tenant")
        log.warning("region %s answered %s to a tenant key check", region, answer.status_code)
        raise RegionUnavailable(region)

    def _call(
        self,
        region: Region,
        method: str,
        tenant: str,
        body: dict[str, Any] | None = None,
        *,
        path: str = "",
        expected: tuple[int, ...] | None = None,
    ) -> requests.Response:
        key = self._secrets.get(region_key_secret_name(region))
        if key is None:
            log.error("region %s is not configured for provisioning (function key missing)", region)
            raise RegionUnavailable(region)
        route = f"manage/tenants/{tenant}" + (f"/{path}" if path else "")
        answer = self._request(region, method, route, body, {"x-functions-key": key})
        expected = expected or {"PUT": (200, 201), "DELETE": (204, 404)}[method]
        if answer.status_code not in expected:
            log.warning("region %s answered %s to %s of a tenant", region, answer.status_code, method)
            raise RegionUnavailable(region)
        return answer

    def _request(
        self,
        region: Region,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        base_url = self._settings.region_url(region)
        if base_url is None:
            log.error("region %s is not configured for provisioning (URL missing)", region)
            raise RegionUnavailable(region)
        url = f"{base_url.rstrip('/')}/{path}"
        try:
            answer = self._session.request(
                method, url, json=body, headers=headers, timeout=TIMEOUT_S, allow_redirects=False
            )
        except requests.RequestException as error:
            log.warning("region %s did not answer %s: %s", region, method, type(error).__name__)
            raise RegionUnavailable(region) from None
        if 300 <= answer.status_code < 400:
            log.error("region %s answered %s to %s with a redirect, not followed", region, answer.status_code, method)
            raise RegionRedirected(region)
        return answer
