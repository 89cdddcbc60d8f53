"""Infrastructure checks: checkov over infra/, and the GDPR-critical properties of the Bicep.

Bicep cannot be compiled here, so the templates are parsed with pycep (the parser checkov uses) and the
properties a reviewer signs off are asserted on the parsed form: the separate capture account, no shared
key, no copy outliving a record, the 30-day lifecycle backstop, TLS, identity-based settings, the role
assignments and the regions. infra/deploy.sh runs against a fake `az` that records every call.
"""

from __future__ import annotations

import json
import marshal
import os
import re
import subprocess
import sys
import types
import zipfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from pycep import BicepParser

from shared.core.settings import REGIONS, setting_names
from shared.storage.blobs import CONTAINERS
from tests.factories import ROOT

INFRA = ROOT / "infra"
MODULES = INFRA / "modules"
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"

# Settings of shared/core/settings.py that the Bicep must NOT set. PACKCLOUD_STORAGE_CONNECTION_STRING is for
# local development with Azurite only: in Azure the app reaches the capture account with its managed
# identity through PACKCLOUD_STORAGE_ACCOUNT_URL, and no connection string or account key may exist.
# PACKCLOUD_DPO_WEBHOOK_DEV_NETWORKS opens the DPO webhooks' SSRF guard to named networks: never in Azure.
LOCAL_ONLY_SETTINGS = {
    "PACKCLOUD_STORAGE_CONNECTION_STRING",
    "PACKCLOUD_LOCAL_SECRETS_PATH",
    "PACKCLOUD_DPO_WEBHOOK_DEV_NETWORKS",
}

# The only other app settings allowed: identity-based host storage and Entra-authenticated telemetry.
# (In Flex Consumption the runtime and its version are in functionAppConfig, not app settings.)
PLATFORM_SETTINGS = {
    "AzureWebJobsStorage__accountName",
    "AzureWebJobsStorage__credential",
    "AzureWebJobsStorage__clientId",
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
    "PYTHON_THREADPOOL_THREAD_COUNT",
}

REGION_LOCATIONS = {"us": "eastus", "br": "brazilsouth", "eu": "westeurope", "ea": "eastasia"}
HOME_REGION = "us"
MASTER_KEY_SECRET = "packcloud-master-key"

# Built-in role definition ids (the same in every subscription) and the names that must document them.
BUILT_IN_ROLES = {
    "storageBlobDataOwnerRoleId": ("b7e6dc6d-f1e8-4753-8033-0f276bb0955b", "Storage Blob Data Owner"),
    "storageBlobDataContributorRoleId": ("ba92f5b4-2d11-453d-a403-e96b0029c9fe", "Storage Blob Data Contributor"),
    "keyVaultSecretsUserRoleId": ("4633458b-17de-408a-b874-0445c86b69e6", "Key Vault Secrets User"),
    "keyVaultSecretsOfficerRoleId": ("b86a8fe4-44ce-4948-aee5-eccb2c155cd7", "Key Vault Secrets Officer"),
    "monitoringMetricsPublisherRoleId": ("3913510d-42f4-4e42-8a64-420c390055eb", "Monitoring Metrics Publisher"),
}
BLOB_TAG_DATA_ACTIONS = {
    "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/tags/read",
    "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/tags/write",
    "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/filter/action",
}
GEO_REPLICATED_SKUS = {"Standard_GRS", "Standard_RAGRS", "Standard_GZRS", "Standard_RAGZRS"}


# ---------------------------------------------------------------- parsing helpers


@cache
def bicep(path: Path) -> dict[str, Any]:
    return BicepParser().parse(file_path=path)


def main() -> dict[str, Any]:
    return bicep(INFRA / "main.bicep")


def module(name: str) -> dict[str, Any]:
    return bicep(MODULES / f"{name}.bicep")


def resolve(doc: dict[str, Any], value: Any) -> Any:
    """Replace references to a file's variables and parameter defaults, and simple interpolations."""
    if isinstance(value, list):
        return [resolve(doc, item) for item in value]
    if isinstance(value, dict) and "value" not in value:
        return value  # an expression (function, operator) or a plain object: left as parsed
    if not isinstance(value, str):
        return value
    variables = doc.get("variables", {})
    parameters = doc.get("parameters", {})
    if value in variables:
        return resolve(doc, variables[value]["value"])
    if value in parameters and parameters[value].get("default") is not None:
        return resolve(doc, parameters[value]["default"])

    def substitute(match: re.Match[str]) -> str:
        resolved = resolve(doc, match.group(1))
        return str(resolved) if resolved != match.group(1) else match.group(0)

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", substitute, value)


def resources(doc: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    """Symbolic name -> {'config', 'condition', 'loop'} of every resource of a type."""
    found = {}
    for name, resource in doc.get("resources", {}).items():
        if resource["type"] != type_:
            continue
        config = resource["config"]
        condition = loop = None
        if "loop_type" in config or ("condition" in config and "config" in config):
            condition, loop, config = config.get("condition"), config.get("loop_type"), config["config"]
        found[name] = {"config": config, "condition": condition, "loop": loop}
    return found


def one(doc: dict[str, Any], type_: str) -> dict[str, Any]:
    found = resources(doc, type_)
    assert len(found) == 1, f"expected one {type_}, found {sorted(found)}"
    return next(iter(found.values()))["config"]


def module_output_ref(value: Any) -> tuple[str, str]:
    """`mod.outputs.name` as parsed by pycep -> ('mod', 'name')."""
    operands = value["operator"]["operands"]
    inner = operands["operand_2"]["operator"]["operands"]
    assert inner["operand_1"] == "outputs", value
    return operands["operand_1"], inner["operand_2"]


def packcloud_settings() -> dict[str, Any]:
    return main()["variables"]["packcloudSettings"]["value"]


def platform_settings() -> dict[str, Any]:
    return module("function-app")["variables"]["platformSettings"]["value"]


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


def code(path: Path) -> str:
    """A Bicep file without its // comments (a URL's :// is not a comment)."""
    return re.sub(r"(^|\s)//.*$", "", path.read_text(), flags=re.MULTILINE)


# ---------------------------------------------------------------- checkov


@pytest.fixture(scope="module")
def checkov() -> dict[str, Any]:
    if not CHECKOV.exists():
        pytest.fail(f"checkov is not installed at {CHECKOV.relative_to(ROOT)}: run `make test` (it installs it)")
    run = subprocess.run(
        [str(CHECKOV), "--framework", "bicep", "--skip-download", "--compact", "-d", "infra", "-o", "json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "LOG_LEVEL": "INFO"},
        check=False,
    )
    assert run.stdout.strip(), f"checkov printed no report:\n{run.stderr[-3000:]}"
    report = json.loads(run.stdout)
    if isinstance(report, list):  # one report per framework; only bicep runs here
        report = next(item for item in report if item["check_type"] == "bicep")
    report["stderr"] = run.stderr
    report["returncode"] = run.returncode
    return report


def test_checkov_reports_no_failed_check(checkov):
    failed = [
        f"{item['check_id']} {item['resource']} ({item['file_path']}): {item['check_name']}"
        for item in checkov["results"]["failed_checks"]
    ]
    assert failed == []
    assert checkov["summary"]["failed"] == 0
    assert checkov["summary"]["passed"] >= 25  # the checks really ran on the resources
    assert checkov["returncode"] == 0


def test_checkov_parses_every_bicep_file(checkov):
    # pycep skips a file it cannot parse (nullable types `string?`, user-defined `func`, ...): a skipped
    # file would pass every check. Count what checkov itself says it parsed.
    assert checkov["summary"]["parsing_errors"] == 0, checkov["results"].get("parsing_errors")
    started = re.search(r"\[bicep\] start to parse (\d+) files", checkov["stderr"])
    parsed = re.search(r"\[bicep\] successfully parsed (\d+) files", checkov["stderr"])
    assert started and parsed, "checkov's log no longer says how many Bicep files it parsed"
    assert int(started.group(1)) == int(parsed.group(1)) == len(bicep_files())
    assert len(bicep_files()) >= 8


def test_checkov_skips_are_inline_with_a_reason(checkov):
    skipped = checkov["results"]["skipped_checks"]
    for item in skipped:
        reason = (item["check_result"].get("suppress_comment") or "").strip()
        assert len(reason) >= 40, f"{item['check_id']} on {item['resource']} is skipped without a real reason"
        path = INFRA / item["file_path"].lstrip("/")
        lines = path.read_text().splitlines()
        first, last = item["file_line_range"]
        inside = "\n".join(lines[first - 1 : last])
        assert f"checkov:skip={item['check_id']}" in inside, f"{item['check_id']} is not skipped inside its resource"
    # No skip that checkov did not see (a typo in an id would silently not apply).
    written = sum(path.read_text().count("checkov:skip=") for path in bicep_files())
    assert written == len(skipped)


def test_every_bicep_file_parses_with_pycep():
    for path in bicep_files():
        assert bicep(path).get("globals") is not None, path


# ---------------------------------------------------------------- storage


def test_capture_account_is_separate_from_the_host_account():
    modules = main()["modules"]
    assert modules["hostStorage"]["detail"]["path"] == "modules/host-storage.bicep"
    assert modules["captureStorage"]["detail"]["path"] == "modules/capture-storage.bicep"
    host_name = resolve(main(), modules["hostStorage"]["config"]["params"]["name"])
    capture_name = resolve(main(), modules["captureStorage"]["config"]["params"]["name"])
    assert host_name != capture_name
    # The app's data goes to the capture account; the Functions host to the host account.
    url = packcloud_settings()["PACKCLOUD_STORAGE_ACCOUNT_URL"]
    assert module_output_ref(url) == ("captureStorage", "blobEndpoint")
    params = modules["functionApp"]["config"]["params"]
    assert module_output_ref(params["hostStorageName"]) == ("hostStorage", "name")
    assert platform_settings()["AzureWebJobsStorage__accountName"] == "hostStorageName"


@pytest.mark.parametrize("name", ["host-storage", "capture-storage"])
def test_storage_accounts_are_hardened(name):
    account = one(module(name), "Microsoft.Storage/storageAccounts")
    props = account["properties"]
    assert account["kind"] == "StorageV2"
    assert props["minimumTlsVersion"] == "TLS1_2"
    assert props["supportsHttpsTrafficOnly"] is True
    assert props["allowBlobPublicAccess"] is False
    assert props["allowSharedKeyAccess"] is False
    assert props["allowCrossTenantReplication"] is False
    assert props["encryption"]["requireInfrastructureEncryption"] is True
    # Geo-replication would copy data to the paired region, outside the region the customer chose.
    assert account["sku"]["name"] not in GEO_REPLICATED_SKUS
    assert props["isHnsEnabled"] is False  # blob index tags need a flat namespace


def test_capture_account_keeps_no_copy_beyond_30_days():
    doc = module("capture-storage")
    blob = one(doc, "Microsoft.Storage/storageAccounts/blobServices")["properties"]
    backstop = resolve(doc, "backstopDays")
    assert blob["isVersioningEnabled"] is False
    soft_delete = blob["deleteRetentionPolicy"]
    # Off, or counted inside the bound: a record deleted by the backstop at day N lives N + days.
    assert soft_delete["enabled"] is False or backstop + resolve(doc, soft_delete["days"]) <= 30
    container_soft_delete = blob["containerDeleteRetentionPolicy"]
    assert container_soft_delete["enabled"] is False or backstop + resolve(doc, container_soft_delete["days"]) <= 30
    assert blob["changeFeed"]["enabled"] is False


def test_lifecycle_rule_deletes_records_and_state_after_30_days():
    doc = module("capture-storage")
    policy = one(doc, "Microsoft.Storage/storageAccounts/managementPolicies")
    assert policy["name"] == "default"
    rules = policy["properties"]["policy"]["rules"]
    assert len(rules) == 1
    rule = rules[0]
    assert rule["enabled"] is True
    assert rule["type"] == "Lifecycle"
    prefixes = set(resolve(doc, rule["definition"]["filters"]["prefixMatch"]))
    assert prefixes == {"records/", "state/"}  # audit/ must survive; registry/ holds no personal data
    assert "blockBlob" in rule["definition"]["filters"]["blobTypes"]
    days = resolve(doc, rule["definition"]["actions"]["baseBlob"]["delete"]["daysAfterCreationGreaterThan"])
    assert days == 30
    assert doc["parameters"]["backstopDays"]["decorators"][-1] == {"type": "max_value", "argument": 30}


def test_capture_containers_are_the_apps_and_private():
    doc = module("capture-storage")
    containers = resources(doc, "Microsoft.Storage/storageAccounts/blobServices/containers")
    (entry,) = containers.values()
    assert entry["loop"]["detail"]["item_name"] == entry["config"]["name"]
    names = resolve(doc, entry["loop"]["detail"]["array_name"])
    assert sorted(names) == sorted(CONTAINERS) == sorted(["registry", "records", "state", "audit"])
    assert entry["config"]["properties"]["publicAccess"] == "None"


def test_capture_data_access_is_logged():
    settings = resources(module("capture-storage"), "Microsoft.Insights/diagnosticSettings")
    (entry,) = settings.values()
    assert entry["config"]["scope"] == "blobService"
    categories = {log["category"] for log in entry["config"]["properties"]["logs"] if log["enabled"]}
    assert categories == {"StorageRead", "StorageWrite", "StorageDelete"}


# ---------------------------------------------------------------- function app


def function_app() -> dict[str, Any]:
    return one(module("function-app"), "Microsoft.Web/sites")


def test_function_app_is_flex_consumption_python_311_with_its_identity():
    doc = module("function-app")
    plan = one(doc, "Microsoft.Web/serverfarms")
    assert plan["sku"] == {"tier": "FlexConsumption", "name": "FC1"}
    assert plan["properties"]["reserved"] is True  # Linux
    site = function_app()
    assert site["kind"] == "functionapp,linux"
    assert site["identity"]["type"] == "UserAssigned"
    config = site["properties"]["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.11"}
    storage = config["deployment"]["storage"]
    assert storage["authentication"] == {"type": "UserAssignedIdentity", "userAssignedIdentityResourceId": "identityId"}
    assert resolve(doc, config["scaleAndConcurrency"]["maximumInstanceCount"]) <= 100  # cost cap


def test_http_concurrency_and_the_worker_threads_come_from_one_parameter():
    # infra/README.md "Per-instance concurrency": the value is chosen from bench/concurrency.py, and the Python
    # worker's thread pool must be as large as what the platform admits, or requests queue inside the instance.
    doc = module("function-app")
    parameter = doc["parameters"]["perInstanceConcurrency"]
    chosen = resolve(doc, "perInstanceConcurrency")
    assert isinstance(chosen, int) and 1 < chosen <= 32  # 1 is Flex Consumption's Python default, 32 the pool cap
    decorators = {d["type"]: d["argument"] for d in parameter["decorators"] if d["type"] in ("min_value", "max_value")}
    assert decorators == {"min_value": 1, "max_value": 32}
    http = function_app()["properties"]["functionAppConfig"]["scaleAndConcurrency"]["triggers"]["http"]
    assert http == {"perInstanceConcurrency": "perInstanceConcurrency"}
    threads = platform_settings()["PYTHON_THREADPOOL_THREAD_COUNT"]
    assert threads["function"]["type"] == "string"
    assert list(threads["function"]["parameters"].values()) == ["perInstanceConcurrency"]
    # The figure the benchmark checks its targets at is the one deployed, and the README states it.
    from bench.concurrency import bicep_concurrency

    assert bicep_concurrency() == chosen
    assert f"perInstanceConcurrency: {chosen}" in (INFRA / "README.md").read_text()


def test_function_app_transport_and_publishing_are_locked_down():
    site = function_app()
    props = site["properties"]
    assert props["httpsOnly"] is True
    assert props["siteConfig"]["minTlsVersion"] == "1.2"
    assert props["siteConfig"]["scmMinTlsVersion"] == "1.2"
    assert props["siteConfig"]["ftpsState"] == "Disabled"
    policies = resources(module("function-app"), "Microsoft.Web/sites/basicPublishingCredentialsPolicies")
    assert {entry["config"]["name"]: entry["config"]["properties"]["allow"] for entry in policies.values()} == {
        "ftp": False,
        "scm": False,
    }


def test_app_settings_match_the_settings_class():
    names = setting_names()
    assert names >= LOCAL_ONLY_SETTINGS, "the local-only exception names a setting that no longer exists"
    assert set(packcloud_settings()) == names - LOCAL_ONLY_SETTINGS
    assert set(platform_settings()) == PLATFORM_SETTINGS


def test_app_settings_are_set_in_one_place():
    # The site's only app settings are the union of the platform ones and main.bicep's packcloudSettings.
    loop = function_app()["properties"]["siteConfig"]["appSettings"]["loop_type"]["detail"]
    union = loop["array_name"]["function"]["parameters"]["arg_1"]["function"]
    assert union["type"] == "union"
    assert set(union["parameters"].values()) == {"platformSettings", "packcloudSettings"}
    assert main()["modules"]["functionApp"]["config"]["params"]["packcloudSettings"] == "packcloudSettings"
    config_resources = resources(module("function-app"), "Microsoft.Web/sites/config")
    assert config_resources == {}, "app settings must not also be set by a sites/config resource"
    keys = [
        (path.name, key)
        for path in bicep_files()
        for key in re.findall(r"^\s*'?(PACKCLOUD_[A-Z0-9_]+)'?\s*:", code(path), flags=re.MULTILINE)
    ]
    assert keys == [("main.bicep", name) for name in packcloud_settings()], "a PACKCLOUD_ setting is set twice"


def test_no_key_or_connection_string_anywhere():
    text = "\n".join(code(path) for path in bicep_files())
    for forbidden in (
        "listKeys",
        "AccountKey",
        "SharedAccessSignature",
        "AzureWebJobsStorage:",
        "'AzureWebJobsStorage'",
    ):
        assert forbidden not in text
    for name in set(packcloud_settings()) | set(platform_settings()):
        assert "CONNECTION_STRING" not in name or name == "APPLICATIONINSIGHTS_CONNECTION_STRING"
    assert "FUNCTIONS_WORKER_RUNTIME" not in text  # Flex Consumption: the runtime is in functionAppConfig


def test_host_storage_uses_the_managed_identity():
    settings = platform_settings()
    assert settings["AzureWebJobsStorage__credential"] == "managedidentity"
    assert settings["AzureWebJobsStorage__clientId"] == "identityClientId"
    assert settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == "ClientId=${identityClientId};Authorization=AAD"
    params = main()["modules"]["functionApp"]["config"]["params"]
    assert module_output_ref(params["identityClientId"]) == ("identity", "clientId")
    assert module_output_ref(packcloud_settings()["PACKCLOUD_MANAGED_IDENTITY_CLIENT_ID"]) == ("identity", "clientId")


def test_master_key_is_a_key_vault_reference_resolved_with_the_identity():
    value = resolve(main(), packcloud_settings()["PACKCLOUD_MASTER_KEY"])
    assert value == f"@Microsoft.KeyVault(VaultName=${{keyVault.outputs.name}};SecretName={MASTER_KEY_SECRET})"
    assert function_app()["properties"]["keyVaultReferenceIdentity"] == "identityId"
    assert module_output_ref(packcloud_settings()["PACKCLOUD_KEY_VAULT_URL"]) == ("keyVault", "uri")
    # The secret is never part of a template or parameter: only infra/master-key.sh creates it.
    assert not resources(module("key-vault"), "Microsoft.KeyVault/vaults/secrets")
    assert resolve(main(), "masterKeySecretName") == MASTER_KEY_SECRET
    default = "SECRET=${2:-${AZURE_KEY_VAULT_MASTER_KEY_SECRET:-" + MASTER_KEY_SECRET + "}}"
    assert default in (INFRA / "master-key.sh").read_text()


def test_role_setting_marks_only_the_home_deployment():
    role = packcloud_settings()["PACKCLOUD_ROLE"]["operator"]
    assert role["type"] == "conditional"
    assert role["operands"] == {"condition": "isHome", "true_value": "regional,registration", "false_value": "regional"}
    default = main()["parameters"]["isHome"]["default"]["operator"]
    assert default == {"type": "equals", "operands": {"operand_1": "region", "operand_2": HOME_REGION}}


# ---------------------------------------------------------------- key vault and monitoring


def test_key_vault_uses_rbac_soft_delete_and_purge_protection():
    doc = module("key-vault")
    props = one(doc, "Microsoft.KeyVault/vaults")["properties"]
    assert props["enableRbacAuthorization"] is True
    assert props["enableSoftDelete"] is True
    assert props["enablePurgeProtection"] is True
    assert resolve(doc, props["softDeleteRetentionInDays"]) >= 7
    assert "accessPolicies" not in props


def test_telemetry_uses_entra_auth_and_a_30_day_retention():
    doc = module("monitoring")
    workspace = one(doc, "Microsoft.OperationalInsights/workspaces")["properties"]
    insights = one(doc, "Microsoft.Insights/components")["properties"]
    assert resolve(doc, workspace["retentionInDays"]) == 30
    assert workspace["features"]["disableLocalAuth"] is True
    assert insights["DisableLocalAuth"] is True
    assert insights["DisableIpMasking"] is False
    assert insights["WorkspaceResourceId"]["operator"]["operands"] == {"operand_1": "workspace", "operand_2": "id"}


# Retention settings allowed past 30 days, each with why it holds no personal data. Anything else named
# *retention* or *days* in a template (a parameter's bound, a resource property, a module argument) keeps what
# it keeps for at most 30 days.
LONG_RETENTION_ALLOWED = {
    ("key-vault", "softDeleteRetentionInDays"): "the master key and the packs' service credentials, no person's data",
    ("main", "auditRetentionDays"): "the audit trail, which holds no personal data (docs/privacy.md)",
}
# Where diagnostic settings may send logs: only the 30-day workspace, never an account or a hub that keeps them.
LOG_DESTINATIONS_REFUSED = {"storageAccountId", "eventHubAuthorizationRuleId", "eventHubName", "marketplacePartnerId"}


def retention_settings(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(path, value as written) of every key naming a retention or a number of days, anywhere in a value."""
    if isinstance(value, dict):
        for key, inner in value.items():
            where = f"{path}.{key}" if path else str(key)
            if re.search(r"retention|days", str(key), re.IGNORECASE) and not isinstance(inner, dict | list):
                yield where, inner
            else:
                yield from retention_settings(inner, where)
    elif isinstance(value, list):
        for n, inner in enumerate(value):
            yield from retention_settings(inner, f"{path}[{n}]")


def test_no_log_telemetry_or_storage_setting_keeps_data_past_30_days():
    """Telemetry, logs and copies of data are kept 30 days at most wherever personal data could be in them."""
    checked = 0
    for path in bicep_files():
        doc = bicep(path)
        name = path.stem
        for parameter, declared in doc.get("parameters", {}).items():
            if (
                not re.search(r"retention|days", parameter, re.IGNORECASE)
                or (name, parameter) in LONG_RETENTION_ALLOWED
            ):
                continue
            bounds = {d["type"]: d["argument"] for d in declared.get("decorators", [])}
            assert bounds.get("max_value", 10**6) <= 30, f"{name}: {parameter} may be set past 30 days"
            assert declared.get("default") is None or declared["default"] <= 30, f"{name}: {parameter}"
            checked += 1
        for symbol, resource in doc.get("resources", {}).items():
            for where, written in retention_settings(resource["config"]):
                if (name, written) in LONG_RETENTION_ALLOWED:
                    continue  # the parameter allowed above
                days = resolve(doc, written)
                assert isinstance(days, int | bool), f"{name}: {symbol}.{where} is not a checkable number: {days}"
                assert isinstance(days, bool) or days <= 30, f"{name}: {symbol}.{where} keeps {days} days"
                checked += 1
        for symbol, called in doc.get("modules", {}).items():
            for where, written in retention_settings(called["config"].get("params", {})):
                days = resolve(doc, written)
                assert isinstance(days, int) and days <= 30, f"{name}: module {symbol} gets {where} = {days}"
                checked += 1
        for symbol, entry in resources(doc, "Microsoft.Insights/diagnosticSettings").items():
            destinations = set(entry["config"]["properties"]) & (LOG_DESTINATIONS_REFUSED | {"workspaceId"})
            assert destinations == {"workspaceId"}, f"{name}: {symbol} sends logs to {sorted(destinations)}"
    assert checked >= 6  # the parameters and properties above were found: the rule means something
    for refused in (
        "Microsoft.OperationalInsights/workspaces/dataExports",
        "Microsoft.Insights/components/exportconfiguration",
    ):
        assert all(not resources(bicep(path), refused) for path in bicep_files()), f"{refused} copies logs out"
    # The diagnostic settings' workspace is the monitoring module's, whose retention is bounded above.
    for symbol in ("captureStorage", "keyVault"):
        assert module_output_ref(main()["modules"][symbol]["config"]["params"]["workspaceId"]) == (
            "monitoring",
            "workspaceId",
        )
    workspace = one(module("monitoring"), "Microsoft.OperationalInsights/workspaces")["properties"]
    assert workspace["features"]["immediatePurgeDataOn30Days"] is True


def test_the_functions_host_records_no_query_string():
    """Request telemetry drops the query only in the Application Insights mode with query tracing off (see
    infra/README.md, "Telemetry"); OpenTelemetry mode keeps it. No log level forwards client libraries' DEBUG."""
    host = json.loads((ROOT / "host.json").read_text(encoding="utf-8"))
    insights = host["logging"]["applicationInsights"]
    assert insights["enableQueryStringTracing"] is False
    assert host.get("telemetryMode", "ApplicationInsights").lower() == "applicationinsights"
    assert not {level.lower() for level in host["logging"]["logLevel"].values()} & {"trace", "debug"}
    # No app setting can override host.json (AzureFunctionsJobHost__...): the settings are exactly these.
    assert not [name for name in platform_settings() if name.lower().startswith("azurefunctionsjobhost")]


# ---------------------------------------------------------------- roles


def role_assignments() -> dict[str, dict[str, Any]]:
    doc = module("roles")
    found = {}
    for name, entry in resources(doc, "Microsoft.Authorization/roleAssignments").items():
        props = entry["config"]["properties"]
        role = props["roleDefinitionId"]
        if "function" in role:  # subscriptionResourceId('...roleDefinitions', <constant>)
            role = role["function"]["parameters"]["resource_name_1"]
        else:  # <customRole>.id
            role = role["operator"]["operands"]["operand_1"]
        found[name] = {
            "role": role,
            "scope": entry["config"]["scope"],
            "condition": entry["condition"],
            "principal": props["principalId"],
            "principalType": props["principalType"],
        }
    return found


def test_role_definition_ids_are_named_constants_with_the_role_named():
    doc = module("roles")
    lines = (MODULES / "roles.bicep").read_text().splitlines()
    for constant, (role_id, role_name) in BUILT_IN_ROLES.items():
        assert doc["variables"][constant]["value"] == role_id
        (line,) = [i for i, text in enumerate(lines) if text.startswith(f"var {constant} =")]
        comment = []
        while lines[line - 1 - len(comment)].startswith("//"):
            comment.append(lines[line - 1 - len(comment)])
        assert comment and comment[-1].startswith(f"// {role_name}:"), f"{constant} has no comment naming {role_name}"
    # No role id written anywhere else as a literal.
    text = "\n".join(path.read_text() for path in bicep_files())
    for role_id, _ in BUILT_IN_ROLES.values():
        assert text.count(role_id) == 1


def test_app_identity_has_least_privilege_roles():
    app = {name: entry for name, entry in role_assignments().items() if entry["principal"] == "appPrincipalId"}
    granted = {(entry["role"], entry["scope"], entry["condition"]) for entry in app.values()}
    assert granted == {
        ("storageBlobDataOwnerRoleId", "hostStorage", None),  # Functions host and Flex deployment
        ("storageBlobDataContributorRoleId", "captureStorage", None),
        ("blobIndexTagsRole", "captureStorage", None),  # tags and Find Blobs by Tags
        ("keyVaultSecretsUserRoleId", "vault", None),
        ("keyVaultSecretsOfficerRoleId", "vault", "isHome"),  # home deployment only
        ("monitoringMetricsPublisherRoleId", "appInsights", None),
    }
    assert all(entry["principalType"] == "ServicePrincipal" for entry in app.values())
    # Never Storage Blob Data Owner on the personal data.
    assert ("storageBlobDataOwnerRoleId", "captureStorage", None) not in granted


def test_blob_index_tags_role_grants_only_tag_data_actions():
    doc = module("roles")
    role = one(doc, "Microsoft.Authorization/roleDefinitions")["properties"]
    (permissions,) = role["permissions"]
    assert set(resolve(doc, permissions["dataActions"])) == BLOB_TAG_DATA_ACTIONS
    assert permissions["actions"] == []  # no management-plane permission
    (scope,) = role["assignableScopes"]  # this resource group only
    assert scope["operator"]["operands"]["operand_1"]["function"]["type"] == "resource_group"
    assert scope["operator"]["operands"]["operand_2"] == "id"


def test_operator_secrets_role_is_optional_and_on_the_vault_only():
    operator = [entry for entry in role_assignments().values() if entry["principal"] == "secretsOperatorPrincipalId"]
    assert [(entry["role"], entry["scope"]) for entry in operator] == [("keyVaultSecretsOfficerRoleId", "vault")]
    condition = operator[0]["condition"]["operator"]
    assert condition["type"] == "not"
    assert condition["operands"]["bool_value"]["function"] == {
        "type": "empty",
        "parameters": {"item_to_test": "secretsOperatorPrincipalId"},
    }


# ---------------------------------------------------------------- regions


def test_one_parameters_file_per_region_and_us_is_home():
    files = {path.name.split(".")[0]: json.loads(path.read_text()) for path in (INFRA / "parameters").glob("*.json")}
    assert set(files) == set(REGIONS) == set(REGION_LOCATIONS)
    for code, doc in files.items():
        assert doc["parameters"]["region"]["value"] == code
        assert doc["parameters"]["isHome"]["value"] is (code == HOME_REGION)


def test_region_codes_map_to_their_azure_regions():
    region = main()["parameters"]["region"]
    allowed = next(item["argument"] for item in region["decorators"] if item["type"] == "allowed")
    assert sorted(allowed) == sorted(REGIONS)
    assert main()["variables"]["regionLocations"]["value"] == REGION_LOCATIONS
    # Every resource goes to the region's location, never the resource group's.
    text = "\n".join(path.read_text() for path in bicep_files())
    assert "resourceGroup().location" not in text
    for path in MODULES.glob("*.bicep"):
        for resource in bicep(path).get("resources", {}).values():
            config = resource["config"].get("config", resource["config"])
            if "location" in config and not resource["existing"]:
                assert config["location"] == "location", path
    # deploy.sh creates the resource group in the same region.
    script = (INFRA / "deploy.sh").read_text()
    assert dict(re.findall(r"^\s+(\w\w)\) LOCATION=(\w+) ;;$", script, flags=re.MULTILINE)) == REGION_LOCATIONS


def test_region_urls_default_to_every_regions_app():
    default = main()["parameters"]["regionUrls"]["default"]
    assert set(default) == set(REGIONS)
    for code, url in default.items():
        assert url == f"https://${{namePrefix}}-{code}.azurewebsites.net/api"


def test_azd_deploys_one_region_from_main_parameters():
    azure_yaml = (ROOT / "azure.yaml").read_text()
    assert re.search(r"^infra:\n  provider: bicep\n  path: infra\n  module: main$", azure_yaml, flags=re.MULTILINE)
    assert re.search(r"^    host: function$", azure_yaml, flags=re.MULTILINE)
    assert "infra/master-key.sh" in azure_yaml
    params = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert params["region"] == {"value": "${PACKCLOUD_REGION}"}
    assert set(params) <= set(main()["parameters"])


# ---------------------------------------------------------------- deploy.sh with a fake az

FAKE_AZ = r"""#!/usr/bin/env bash
# A fake Azure CLI: records its arguments, answers what deploy.sh and master-key.sh ask.
printf '%s\n' "$*" >>"$FAKE_AZ_LOG"
args="$*"
case "$args" in
  "account show --query name -o tsv") echo "Test subscription" ;;
  "account show --query user.type -o tsv") echo user ;;
  "account show --query id -o tsv") echo 00000000-0000-0000-0000-000000000000 ;;
  "account show"*) [[ "${FAKE_AZ_LOGGED_IN:-1}" == 1 ]] || { echo "Please run 'az login'" >&2; exit 1; } ;;
  "ad signed-in-user show"*) echo 11111111-1111-1111-1111-111111111111 ;;
  "group exists"*) echo false ;;
  *"properties.outputs.AZURE_FUNCTION_APP_NAME.value"*) echo packcloud-eu ;;
  *"properties.outputs.AZURE_FUNCTION_APP_URL.value"*) echo https://packcloud-eu.azurewebsites.net/api ;;
  *"properties.outputs.AZURE_KEY_VAULT_NAME.value"*) echo kv-pc-eu-test ;;
  *"properties.outputs.AZURE_KEY_VAULT_MASTER_KEY_SECRET.value"*) echo packcloud-master-key ;;
  *"properties.outputs.CAPTURE_STORAGE_ACCOUNT.value"*) echo stpccapteutest ;;
  "keyvault secret show "*)
    if [[ "${FAKE_SECRET:-missing}" == present ]]; then
      echo https://kv/secrets/packcloud-master-key
    else
      echo "(SecretNotFound) A secret with (name/id) packcloud-master-key was not found." >&2
      exit 3
    fi ;;
  "keyvault secret show-deleted"*)
    [[ "${FAKE_SECRET:-missing}" == deleted ]] || exit 3
    echo https://kv/deletedsecrets/packcloud-master-key ;;
  "keyvault secret set"*)
    file=$(sed -E 's/.*--file ([^ ]+).*/\1/' <<<"$args"); cp "$file" "$FAKE_AZ_DIR/secret-value" ;;
  "functionapp deployment source config-zip"*)
    src=$(sed -E 's/.*--src ([^ ]+).*/\1/' <<<"$args"); cp "$src" "$FAKE_AZ_DIR/package.zip" ;;
esac
exit 0
"""


def run_deploy(
    tmp_path: Path, *args: str, with_az: bool = True, **env: str
) -> tuple[subprocess.CompletedProcess, list[str]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    log = tmp_path / "az.log"
    log.touch()
    if with_az:
        (bin_dir / "az").write_text(FAKE_AZ)
        (bin_dir / "az").chmod(0o755)
    path = os.pathsep.join([str(bin_dir), "/usr/bin", "/bin"]) if with_az else str(bin_dir)
    if not with_az:  # only what deploy.sh needs before it looks for az
        for tool in ("dirname", "bash"):
            target = next(Path(d) / tool for d in ("/usr/bin", "/bin") if (Path(d) / tool).exists())
            (bin_dir / tool).symlink_to(target)
    result = subprocess.run(
        ["/bin/bash", str(INFRA / "deploy.sh"), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": path, "HOME": str(tmp_path), "FAKE_AZ_LOG": str(log), "FAKE_AZ_DIR": str(tmp_path), **env},
        check=False,
    )
    return result, log.read_text().splitlines()


@pytest.mark.parametrize("region", ["", "mars", "EU", "us eu"])
def test_deploy_refuses_an_unknown_region(tmp_path, region):
    result, calls = run_deploy(tmp_path, *region.split(" ") if region else [])
    assert result.returncode == 2
    assert "usage: infra/deploy.sh REGION" in result.stderr
    assert calls == []


def test_deploy_says_when_az_is_missing(tmp_path):
    result, _ = run_deploy(tmp_path, "eu", with_az=False)
    assert result.returncode == 1
    assert "the Azure CLI (az) is not installed" in result.stderr


def test_deploy_says_when_az_is_not_logged_in(tmp_path):
    result, calls = run_deploy(tmp_path, "eu", FAKE_AZ_LOGGED_IN="0")
    assert result.returncode == 1
    assert "not logged in: run 'az login'" in result.stderr
    assert not any(call.startswith(("group", "deployment")) for call in calls)


def test_deploy_runs_the_region_and_creates_the_master_key_once(tmp_path):
    result, calls = run_deploy(tmp_path, "eu")
    assert result.returncode == 0, result.stderr
    tags = "--tags application=packcloud packcloud-region=eu"
    assert f"group create --name rg-packcloud-eu --location westeurope {tags} -o none" in calls
    (deployment,) = [call for call in calls if call.startswith("deployment group create")]
    assert f"--template-file {INFRA / 'main.bicep'}" in deployment
    assert f"--parameters @{INFRA / 'parameters' / 'eu.parameters.json'}" in deployment
    assert "secretsOperatorPrincipalId=11111111-1111-1111-1111-111111111111" in deployment
    # The master key: generated, sent from a file, never on a command line.
    (secret_set,) = [call for call in calls if call.startswith("keyvault secret set")]
    assert "--vault-name kv-pc-eu-test --name packcloud-master-key --file " in secret_set
    assert "--value" not in secret_set
    value = (tmp_path / "secret-value").read_text()
    assert len(value) >= 64
    assert value not in "\n".join(calls) + result.stdout + result.stderr
    # The code package: the app, without tests, infra or dev tooling.
    names = zipfile.ZipFile(tmp_path / "package.zip").namelist()
    assert {"function_app.py", "host.json", "requirements.txt", "shared/core/settings.py"} <= set(names)
    assert not [name for name in names if name.startswith(("tests/", "infra/", "devhost/", ".ci/", "local.settings"))]
    assert calls[-2:] == [
        "functionapp restart --resource-group rg-packcloud-eu --name packcloud-eu -o none",
        "account show --query id -o tsv",
    ]
    assert "configreferences/appsettings/PACKCLOUD_MASTER_KEY" in result.stdout


def test_deploy_packs_the_bytecode_of_the_apps_own_modules(tmp_path):
    # The package is mounted read-only in Azure: without it, every cold start compiles PackCloud's modules.
    result, _ = run_deploy(tmp_path, "eu", PACKCLOUD_PYTHON=sys.executable)
    assert result.returncode == 0, result.stderr
    package = zipfile.ZipFile(tmp_path / "package.zip")
    names = package.namelist()
    tag = sys.implementation.cache_tag
    sources = [PurePosixPath(name) for name in names if name.startswith(("shared/", "functions/", "function_app.py"))]
    expected = {str(path.parent / "__pycache__" / f"{path.stem}.{tag}.pyc") for path in sources if path.suffix == ".py"}
    compiled = {name for name in names if name.endswith(".pyc")}
    assert compiled == expected and f"shared/core/__pycache__/settings.{tag}.pyc" in compiled
    for name in compiled:  # PEP 552 flags: hash-based (bit 0), not checked against the source (bit 1 clear)
        assert int.from_bytes(package.read(name)[4:8], "little") == 1, name
    pyc = package.read(f"shared/core/__pycache__/settings.{tag}.pyc")
    code = marshal.loads(pyc[16:])  # noqa: S302  # the package this test just built
    assert "get_settings" in {const.co_name for const in code.co_consts if isinstance(const, types.CodeType)}


def test_deploy_without_python_packs_sources_only(tmp_path):
    result, _ = run_deploy(tmp_path, "eu", PACKCLOUD_PYTHON="no-such-python")
    assert result.returncode == 0, result.stderr
    assert "carries no bytecode" in result.stdout
    assert not [name for name in zipfile.ZipFile(tmp_path / "package.zip").namelist() if name.endswith(".pyc")]


def test_deploy_never_replaces_an_existing_master_key(tmp_path):
    result, calls = run_deploy(tmp_path, "br", FAKE_SECRET="present", PACKCLOUD_SKIP_CODE="1")
    assert result.returncode == 0, result.stderr
    assert "--location brazilsouth" in next(call for call in calls if call.startswith("group create"))
    assert not [call for call in calls if call.startswith("keyvault secret set")]
    assert "exists; left unchanged" in result.stdout
    assert not [call for call in calls if "config-zip" in call]


def test_deploy_refuses_to_replace_a_deleted_master_key(tmp_path):
    result, calls = run_deploy(tmp_path, "ea", FAKE_SECRET="deleted", PACKCLOUD_SKIP_CODE="1")
    assert result.returncode == 1
    assert "az keyvault secret recover --vault-name kv-pc-eu-test --name packcloud-master-key" in result.stderr
    assert not [call for call in calls if call.startswith(("keyvault secret set", "functionapp restart"))]
