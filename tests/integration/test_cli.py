"""The documented command lines (shared/cli.py): `python -m shared.purge` and `python -m shared.audit verify`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.factories import ROOT, settings_env, settings_values


def run(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def no_settings() -> dict[str, str]:
    """A usage error is answered before any setting is read or storage is reached."""
    return {name: value for name, value in os.environ.items() if not name.startswith("PACKCLOUD_")}


def test_the_audit_command_names_its_usage():
    for args in (["shared.audit"], ["shared.audit", "check", "t-1"], ["shared.audit", "verify"]):
        result = run(args, no_settings())
        assert result.returncode == 2
        assert "usage: python -m shared.audit verify TENANT|_system" in result.stderr


def test_the_purge_command_describes_itself():
    result = run(["shared.purge", "--help"], no_settings())
    assert result.returncode == 0
    assert "usage: python -m shared.purge [-h] [--dry-run]" in result.stdout
    assert "The retention purge" in result.stdout


def test_both_commands_answer_by_name_too():
    assert run(["shared.cli", "audit"], no_settings()).returncode == 2
    assert run(["shared.cli", "purge", "--help"], no_settings()).returncode == 0
    unknown = run(["shared.cli", "export"], no_settings())
    assert unknown.returncode == 2
    assert "usage: python -m shared.cli purge|audit" in unknown.stderr


def test_audit_verify_checks_a_tenants_chain(azurite, services, tenant_id):
    services.audit.append(tenant_id, "test", count=1)
    services.audit.append(tenant_id, "test", count=2)
    result = run(["shared.audit", "verify", tenant_id], {**os.environ, **settings_env(azurite)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{tenant_id}: 2 entries")


# ---------------------------------------------------------------- run as the README writes them


def beside(folder, values: dict[str, object]) -> dict[str, str]:
    """A local.settings.json in `folder`, and an environment with no PACKCLOUD_ setting exported: the
    commands must find their settings in the file, as `func start` does."""
    (folder / "local.settings.json").write_text(json.dumps({"IsEncrypted": False, "Values": values}))
    return {**no_settings(), "PYTHONPATH": str(ROOT)}


def run_in(folder, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=folder, env=env, capture_output=True, text=True, timeout=120
    )


def test_the_commands_read_local_settings_json_when_nothing_is_exported(azurite, services, tenant_id, tmp_path):
    services.audit.append(tenant_id, "test", count=1)
    env = beside(tmp_path, settings_env(azurite))
    verified = run_in(tmp_path, ["shared.audit", "verify", tenant_id], env)
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.startswith(f"{tenant_id}: 1 entries")
    purged = run_in(tmp_path, ["shared.purge", "--dry-run"], env)
    assert purged.returncode == 0, purged.stderr
    assert "would delete" in purged.stderr


def test_an_exported_setting_wins_over_the_file(azurite, tmp_path):
    env = beside(tmp_path, {**settings_env(azurite), "PACKCLOUD_REGION": "mars"})
    result = run_in(tmp_path, ["shared.purge", "--dry-run"], {**env, "PACKCLOUD_REGION": "eu"})
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "args", [["shared.purge", "--dry-run"], ["shared.audit", "verify", "t-1"], ["shared.cli", "deliver", "--dry-run"]]
)
@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"PACKCLOUD_REGION": "eu"}, "PACKCLOUD_MASTER_KEY"),  # and the storage: missing
        ({"PACKCLOUD_REGION": "mars", "PACKCLOUD_MASTER_KEY": "x" * 40}, "PACKCLOUD_REGION"),
        ({"PACKCLOUD_REGION": ["eu"]}, "PACKCLOUD_REGION"),  # not a string: ignored, so missing
    ],
)
def test_a_bad_setting_ends_a_command_with_one_line_and_status_2(args, values, named, tmp_path):
    result = run_in(tmp_path, args, beside(tmp_path, values))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert named in line
    assert "x" * 40 not in line  # names the setting, never its value


def test_a_file_that_is_not_local_settings_is_named_in_one_line(tmp_path):
    (tmp_path / "local.settings.json").write_text("{not json")
    env = {**no_settings(), "PYTHONPATH": str(ROOT)}
    result = run_in(tmp_path, ["shared.purge"], env)
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == "purge: local.settings.json is not a local settings file: a JSON object with a Values object"
    )


def test_unreachable_storage_ends_a_command_with_one_message_and_status_1(tmp_path):
    dead = (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey="
        + "A" * 88
        + ";BlobEndpoint=http://127.0.0.1:9/devstoreaccount1;"
    )
    env = beside(tmp_path, {**settings_values(dead), "PACKCLOUD_STORAGE_TIMEOUT_SECONDS": "1"})
    result = run_in(tmp_path, ["shared.audit", "verify", "t-1"], env)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()  # one line, the storage layer's own warning held back
    assert line == "audit: storage_unavailable: storage is unavailable, retry later"


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (["show", "TENANT=t-none"], "0 record(s)"),
        (["purge", "DRY_RUN=1"], "would delete"),
        (["deliver", "DRY_RUN=1"], "would upsert"),
        (["audit-verify", "TENANT=t-none"], "t-none:"),
    ],
)
def test_the_make_targets_run_the_commands_in_the_projects_environment(azurite, target, expected):
    env = {**no_settings(), **settings_env(azurite), "PATH": "/usr/bin:/bin"}  # no venv on the PATH
    # The installs are this checkout's, current: `-o` keeps make from redoing them (in a worktree whose node_modules
    # is a link to a shared install, `npm ci` would empty that install for everyone).
    installed = ["-o", ".venv/.installed", "-o", "node_modules/.installed"]
    result = subprocess.run(
        ["make", "-s", *installed, *target], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode in (0, 1), result.stderr  # audit verify of an empty chain may say it is empty
    assert expected in result.stdout + result.stderr
