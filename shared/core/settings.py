"""Every setting PackCloud reads, from the environment (app settings in Azure, local.settings.json locally)."""

from __future__ import annotations

import ipaddress
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AnyHttpUrl,
    Field,
    FilePath,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.core.urls import service_base_url

Region = Literal["us", "br", "eu", "ea"]
REGIONS: tuple[Region, ...] = ("us", "br", "eu", "ea")
Role = Literal["regional", "registration"]

ENV_PREFIX = "PACKCLOUD_"
# Dynamics 365 online hosts: crm.dynamics.com (North America), crm2 ... crm21 (the other geographies).
DYNAMICS_HOST_PATTERNS = ("*.crm.dynamics.com", "*.crm?.dynamics.com", "*.crm??.dynamics.com")
HOST_PATTERN = re.compile(r"[a-z0-9.*?-]*\.[a-z0-9-]+\.[a-z0-9-]+")
# Where tokens for Dynamics 365 come from: Microsoft Entra ID of the public cloud.
ENTRA_AUTHORITY = "https://login.microsoftonline.com"
# Microsoft Graph of the public cloud, where PowerAttachment uploads into SharePoint.
GRAPH_URL = "https://graph.microsoft.com/v1.0"


# Mailchimp's Marketing API; {dc} is the data centre an API key ends with.
MAILCHIMP_API_BASE = "https://{dc}.api.mailchimp.com/3.0"


class SettingsError(RuntimeError):
    """A setting is missing or invalid; the message names it (never its value)."""


class Settings(BaseSettings):
    """One class, one place: the Bicep app settings and local.settings.sample.json list exactly these."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True, env_ignore_empty=True)

    region: Region = Field(description="Region code of this deployment: us, br, eu or ea.")
    role: Annotated[frozenset[Role], NoDecode] = Field(
        default=frozenset({"regional"}),
        description="Comma-separated roles of this deployment: regional, registration.",
    )
    storage_connection_string: SecretStr | None = Field(
        default=None, description="Blob connection string (local development with Azurite only)."
    )
    storage_account_url: AnyHttpUrl | None = Field(
        default=None, description="Blob endpoint of the capture storage account, used with a managed identity."
    )
    managed_identity_client_id: str | None = Field(
        default=None, description="Client id of the user-assigned managed identity (Azure only)."
    )
    key_vault_url: AnyHttpUrl | None = Field(default=None, description="Key Vault URL; unset locally.")
    master_key: SecretStr = Field(
        description="Secret (32+ characters) from which per-tenant signing and subject-hash keys are derived; "
        "a Key Vault reference in Azure."
    )
    registry_cache_ttl_seconds: int = Field(
        default=30, ge=0, le=300, description="How long tenant and dataset documents are cached in process."
    )
    trusted_proxies: Annotated[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...], NoDecode] = Field(
        default=(), description="Comma-separated CIDRs whose X-Forwarded-For entries are trusted."
    )
    region_urls: Annotated[dict[Region, AnyHttpUrl], NoDecode] = Field(
        default_factory=dict, description='JSON map of region code to base URL, e.g. {"eu": "https://..."}.'
    )
    purge_schedule: str = Field(default="0 5 * * * *", description="NCRONTAB schedule of the retention purge.")
    attachment_schedule: str = Field(
        default="0 */5 * * * *",
        description="NCRONTAB schedule of the attachment mover (Dynamics 365 files into SharePoint).",
    )
    audit_retention_days: int = Field(
        default=400, ge=30, le=3650, description="How long audit entries (which hold no personal data) are kept."
    )
    storage_timeout_seconds: float = Field(
        default=10,
        ge=0.5,
        le=120,
        description="How long one storage attempt may wait for an answer before it is retried (twice, 0.5 s apart) "
        "and then answered 503.",
    )
    max_body_bytes: int = Field(default=65536, ge=1024, le=1048576, description="Largest request body accepted.")
    form_rate_per_minute: int = Field(
        default=30,
        ge=0,
        le=100000,
        description="Web-form submissions a minute from one client address to one tenant, per instance; 0: no limit.",
    )

    geo_city_db_path: FilePath | None = Field(
        default=None,
        description="MaxMind-format City database (the customer's, under its own licence) for region, city and "
        "coordinates of sign-ins; unset: country only.",
    )
    travel_speed_kmh: float = Field(
        default=900,
        ge=100,
        le=20000,
        description="Speed between two sign-ins of a user above which travel is impossible.",
    )
    travel_window_hours: float = Field(
        default=2,
        ge=0,
        le=48,
        description="Where coordinates are unknown: a country change within this many hours is impossible travel.",
    )

    local_secrets_path: Path = Field(
        default=Path(".state/secrets.json"),
        description="Local development only, where Key Vault is not set: the private (0600) file of secrets.",
    )
    dynamics_host_patterns: Annotated[tuple[str, ...], NoDecode] = Field(
        default=DYNAMICS_HOST_PATTERNS,
        description="Comma-separated host patterns (* and ?) a registered organisation's Dynamics 365 URL must match.",
    )
    delivery_schedule: str = Field(
        default="0 * * * * *",
        description="NCRONTAB schedule of the delivery into Dynamics 365 (datasets in dataverse mode).",
    )
    delivery_batch_size: int = Field(
        default=1000, ge=1, le=1000, description="Upserts per Dataverse $batch request (Dataverse takes 1,000 at most)."
    )
    mailchimp_api_base: str = Field(
        default=MAILCHIMP_API_BASE,
        description="Mailchimp's Marketing API, {dc} standing for the API key's data centre (a local fake in tests).",
    )
    mailchimp_activity_schedule: str = Field(
        default="0 */10 * * * *", description="NCRONTAB schedule of the reading of Mailchimp campaign activity."
    )
    mailchimp_activity_pages: int = Field(
        default=20, ge=1, le=1000, description="Pages of campaign activity (100 members each) read per run at most."
    )
    entra_authority: str = Field(
        default=ENTRA_AUTHORITY,
        description="The Microsoft Entra ID authority that issues the Dynamics 365 tokens (another one for a national "
        "cloud).",
    )
    graph_url: str = Field(
        default=GRAPH_URL,
        description="Microsoft Graph's base URL (with its version), where attachments are uploaded to SharePoint "
        "(another one for a national cloud).",
    )

    dpo_schedule: str = Field(
        default="30 * * * * *",
        description="NCRONTAB schedule of the DPO notifications' drain (events are also sent as soon as written).",
    )
    dpo_webhook_dev_networks: Annotated[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...], NoDecode] = Field(
        default=(),
        description="Local development only: comma-separated CIDRs a DPO webhook may reach although they are not "
        "public (a receiver on this machine); refused where Azure storage or Key Vault is configured.",
    )

    @field_validator("mailchimp_api_base")
    @classmethod
    def _mailchimp_base(cls, value: str) -> str:
        if "{dc}" not in value:
            raise ValueError("must contain {dc}, where the API key's data centre goes")
        service_base_url(value.replace("{dc}", "us1"))  # the key goes there: https, or http on this machine
        return value.rstrip("/")

    @field_validator("role", mode="before")
    @classmethod
    def _split_roles(cls, value: object) -> object:
        if isinstance(value, str):
            return frozenset(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("dynamics_host_patterns", mode="before")
    @classmethod
    def _split_patterns(cls, value: object) -> object:
        if isinstance(value, str):
            value = tuple(part.strip().lower() for part in value.split(",") if part.strip())
        # Host characters and the wildcards only (no fnmatch [classes]), ending in a fixed domain: a pattern
        # such as `*` or `*.com` would accept hosts that are not Dynamics 365.
        if isinstance(value, tuple) and not all(isinstance(p, str) and HOST_PATTERN.fullmatch(p) for p in value):
            raise ValueError("each pattern has letters, digits, '-', '.', '*' or '?' and ends in a fixed domain")
        return value

    @field_validator("entra_authority", mode="before")
    @classmethod
    def _authority(cls, value: object) -> object:
        # The app's client secrets go to this host: an unambiguous https URL (http only on this machine).
        return service_base_url(value).rstrip("/") if isinstance(value, str) else value

    @field_validator("graph_url", mode="before")
    @classmethod
    def _graph_url(cls, value: object) -> object:
        # The tenant application's Graph tokens and the files' bytes go to this host.
        return service_base_url(value).rstrip("/") if isinstance(value, str) else value

    @field_validator("key_vault_url", "storage_account_url", mode="before")
    @classmethod
    def _service_url(cls, value: object) -> object:
        # Checked as text, before pydantic's URL type repairs it: a token or key is sent to this host.
        return service_base_url(value) if isinstance(value, str) else value

    @field_validator("trusted_proxies", "dpo_webhook_dev_networks", mode="before")
    @classmethod
    def _split_cidrs(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(ipaddress.ip_network(part.strip()) for part in value.split(",") if part.strip())
        return value

    @field_validator("region_urls", mode="before")
    @classmethod
    def _parse_region_urls(cls, value: object) -> object:
        if isinstance(value, str):
            value = json.loads(value) if value.strip() else {}
        # The home deployment sends a region's function key to its URL: only unambiguous https URLs.
        if isinstance(value, dict):
            return {region: service_base_url(url) if isinstance(url, str) else url for region, url in value.items()}
        return value

    @field_validator("master_key")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        secret = value.get_secret_value()
        # Azure passes an unresolvable Key Vault reference through as its own text: never derive keys from it.
        if secret.startswith("@Microsoft.KeyVault("):
            raise ValueError("is an unresolved Key Vault reference: check the app's identity and the secret")
        if len(secret) < 32:
            raise ValueError("must be at least 32 characters")
        return value

    def region_url(self, region: Region) -> str | None:
        """The base URL (…/api) of the deployment serving `region`, when one is configured."""
        url = self.region_urls.get(region)
        return str(url) if url else None

    @model_validator(mode="after")
    def _one_storage(self) -> Settings:
        if (self.storage_connection_string is None) == (self.storage_account_url is None):
            raise ValueError(
                f"set exactly one of {ENV_PREFIX}STORAGE_CONNECTION_STRING and {ENV_PREFIX}STORAGE_ACCOUNT_URL"
            )
        if not self.role:
            raise ValueError(f"{ENV_PREFIX}ROLE names no role")
        # The SSRF guard of DPO webhooks is whole in Azure: its development exception is for this machine only.
        if self.dpo_webhook_dev_networks and (self.storage_account_url or self.key_vault_url):
            raise ValueError(f"{ENV_PREFIX}DPO_WEBHOOK_DEV_NETWORKS is for local development only")
        return self


def setting_names() -> set[str]:
    """The environment variable names of every setting (the infra tests compare them with Bicep)."""
    return {ENV_PREFIX + name.upper() for name in Settings.model_fields}


def load_settings() -> Settings:
    """Read the settings, or fail naming each missing or invalid one (values are never echoed)."""
    try:
        return Settings()
    except ValidationError as error:
        problems = []
        for item in error.errors(include_input=False, include_url=False):
            where = ENV_PREFIX + str(item["loc"][0]).upper() if item["loc"] else "settings"
            problems.append(f"{where}: {item['msg']}")
        raise SettingsError("invalid PackCloud settings: " + "; ".join(problems)) from None


# local.settings.json is a few dozen settings; a file much larger than this is not one.
MAX_LOCAL_SETTINGS_BYTES = 262_144


def local_settings_values(path: Path) -> dict[str, str]:
    """The `Values` of a local.settings.json, the file `func start` reads, for the command lines run beside it.

    Only string values count, as in the Functions host. A file that is not one names itself, never its content.
    """
    try:
        data = path.read_bytes()
    except OSError:
        raise SettingsError(f"{path.name} cannot be read") from None
    if len(data) > MAX_LOCAL_SETTINGS_BYTES:
        raise SettingsError(f"{path.name} is larger than {MAX_LOCAL_SETTINGS_BYTES} bytes")
    try:
        values = json.loads(data)["Values"]
    except (ValueError, KeyError, TypeError):
        raise SettingsError(f"{path.name} is not a local settings file: a JSON object with a Values object") from None
    if not isinstance(values, dict):
        raise SettingsError(f"{path.name}: Values must be an object")
    return {name: value for name, value in values.items() if isinstance(name, str) and isinstance(value, str)}


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
