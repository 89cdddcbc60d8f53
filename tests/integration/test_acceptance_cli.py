"""Acceptance of the newcomer's commands, written from the README alone: `make show`, `make purge`,
`make deliver` and `make audit-verify` are `python -m devenv.show TENANT`, `-m shared.purge`, `-m shared.cli
deliver` and `-m shared.audit verify TENANT`; "a missing or invalid setting ends each with one line naming it
(never its value) and exit status 2; unreachable storage with one line and status 1". Every id is checked
before storage is read, so an argument that is no tenant id is a usage error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.factories import MASTER_KEY, ROOT, settings_env, settings_values

COMMANDS = [
    ["devenv.show", "t-none"],
    ["shared.purge"],
    ["shared.purge", "--dry-run"],
    ["shared.cli", "deliver", "--dry-run"],
    ["shared.audit", "verify", "t-none"],
]
DEAD_STORAGE = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey="
    + "A" * 88
    + ";BlobEndpoint=http://127.0.0.1:9/devstoreaccount1;"
)


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def without_settings() -> dict[str, str]:
    # PYTHONPATH: the commands run from an empty folder (no local.settings.json there), as the project's.
    env = {name: value for name, value in os.environ.items() if not name.startswith("PACKCLOUD_")}
    return {**env, "PYTHONPATH": str(ROOT)}


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr
    return result.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("args", COMMANDS)
def test_an_invalid_setting_is_one_line_naming_it_and_exit_2(tmp_path, args):
    secret_looking = "not-a-region-SECRETVALUE"
    env = {**without_settings(), **settings_values(DEAD_STORAGE), "PACKCLOUD_REGION": secret_looking}
    result = run(args, env, tmp_path)
    assert result.returncode == 2, result.stderr
    line = one_line(result)
    assert "PACKCLOUD_REGION" in line and secret_looking not in result.stderr + result.stdout
    assert MASTER_KEY not in result.stderr + result.stdout


@pytest.mark.parametrize("args", COMMANDS)
def test_unreachable_storage_is_one_line_and_exit_1(tmp_path, args):
    env = {**without_settings(), **settings_values(DEAD_STORAGE), "PACKCLOUD_STORAGE_TIMEOUT_SECONDS": "1"}
    result = run(args, env, tmp_path)
    assert result.returncode == 1, result.stderr
    assert one_line(result).endswith("storage_unavailable: storage is unavailable, retry later")


@pytest.mark.parametrize(
    "args",
    [
        ["devenv.show", "../records"],
        ["devenv.show", "Not_An_Id"],
        ["devenv.show"],
        ["shared.audit", "verify", "../t-1"],
        ["shared.audit", "verify", "T-1"],
    ],
)
def test_an_argument_that_is_no_tenant_id_is_a_usage_error_before_storage(tmp_path, args):
    # Dead storage: a command that read it would hang on its timeout and end with exit 1, not 2.
    env = {**without_settings(), **settings_values(DEAD_STORAGE)}
    result = run(args, env, tmp_path)
    assert result.returncode == 2, result.stderr
    assert one_line(result).startswith("usage: python -m ")


def test_show_prints_a_tenants_records(azurite, manage, anon, tmp_path, tenant_id):
    from tests.factories import EXAMPLE

    assert manage.put(f"/manage/tenants/{tenant_id}", json={}).status_code == 201
    declaration = {**EXAMPLE, "legal_basis": "legitimate_interest"}
    assert manage.put(f"/manage/tenants/{tenant_id}/datasets/visits", json=declaration).status_code == 201
    origin = EXAMPLE["allowed_origins"][0]
    assert anon.get(
        f"/px/{tenant_id}/visits", params={"page_url": f"{origin}/a"}, headers={"origin": origin}
    ).is_success
    result = run(["devenv.show", tenant_id], {**without_settings(), **settings_env(azurite)}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert one_line(result) == "1 record(s)" and f'"blob": "{tenant_id}/visits/' in result.stdout
