"""The documented command lines (shared/cli.py): `python -m shared.purge` and `python -m shared.audit verify`."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.factories import ROOT, settings_env


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
