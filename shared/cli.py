"""The command lines, above the composition root: nothing below shared/services.py runs a command.

python -m shared.purge [--dry-run]           run the retention purge once (dry run: print what would go)
python -m shared.audit verify TENANT|_system check a tenant's (or the deployment's) audit chain
python -m shared.cli purge|audit ...         the same two, by name
python -m shared.cli deliver [--dry-run]     deliver the records of dataverse datasets into Dynamics 365 once
                                             (dry run: print each record that would be upserted, send nothing)
python -m shared.cli mailchimp-activity      read Mailchimp campaign activity into mailchimpevent datasets once
python -m shared.cli attachments [--dry-run] move new Dynamics 365 attachments into SharePoint once
                                             (dry run: print each file's tenant, source, id and size; move nothing)
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, MutableMapping
from pathlib import Path

from shared.core.errors import PackCloudError
from shared.core.events import AUDIT_VERIFICATION_FAILED
from shared.core.ids import is_valid_id
from shared.core.settings import SettingsError, local_settings_values
from shared.services import Services, get_services
from shared.storage.audit import SYSTEM, AuditLog
from shared.storage.blobs import storage_errors

PURGE_DESCRIPTION = "The retention purge: deletes every record (and every piece of personal state) past its expiry."
DELIVER_DESCRIPTION = (
    "The delivery into Dynamics 365: upserts the records of every dataverse dataset, then deletes them."
)
ATTACHMENTS_DESCRIPTION = (
    "The attachment mover: copies new Dynamics 365 files into each tenant's SharePoint library, verifies each copy, "
    "then records its link (and in link mode removes the file from Dynamics 365)."
)
AUDIT_USAGE = "usage: python -m shared.audit verify TENANT|_system (TENANT: a tenant id, ^[a-z0-9][a-z0-9-]{1,62}$)"
LOCAL_SETTINGS_FILE = "local.settings.json"
APP_ROOT = Path(__file__).resolve().parents[1]


def use_local_settings(environ: MutableMapping[str, str] = os.environ) -> Path | None:
    """Run by hand beside the app, the commands read local.settings.json as `func start` does: the current
    directory's, else the app's own. A setting already in the environment wins, so one run can change one."""
    for folder in (Path.cwd(), APP_ROOT):
        path = folder / LOCAL_SETTINGS_FILE
        if path.is_file():
            for name, value in local_settings_values(path).items():
                environ.setdefault(name, value)
            return path
    return None


def services() -> Services:
    """The services, read after the arguments: a usage error is answered before any setting is needed."""
    use_local_settings()
    return get_services()


def purge(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.purge", description=PURGE_DESCRIPTION)
    parser.add_argument("--dry-run", action="store_true", help="print what would be deleted, delete nothing")
    args = parser.parse_args(argv)
    report = services().purger().run(dry_run=args.dry_run)
    for name in report.would_delete:
        print(name)
    verb = "would delete" if args.dry_run else "deleted"
    unfinished = "" if report.complete else " (time budget spent; the next run continues)"
    print(
        f"{verb} {report.deleted} record(s) and {report.state_deleted} state blob(s) "
        f"in {report.duration_s:.1f} s{unfinished}",
        file=sys.stderr,
    )
    return 0


def deliver(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.cli deliver", description=DELIVER_DESCRIPTION)
    parser.add_argument("--dry-run", action="store_true", help="print what would be upserted; send and delete nothing")
    args = parser.parse_args(argv)
    report = services().deliverer.run(dry_run=args.dry_run)
    for line in report.would_send:
        print(line)
    if args.dry_run:
        print(f"would upsert {len(report.would_send)} record(s)", file=sys.stderr)
        return 0
    for tenant, outcome in sorted(report.tenants.items()):
        error = f" ({outcome.error})" if outcome.error else ""
        print(f"{tenant}: {outcome.state}{error}", file=sys.stderr)
    print(
        f"delivered {report.delivered} record(s), {report.deleted} deleted, {report.refused} refused, "
        f"{report.requests} Dataverse request(s) in {report.duration_s:.1f} s",
        file=sys.stderr,
    )
    failed = any(outcome.state in ("failing", "storage_unavailable") for outcome in report.tenants.values())
    return 1 if failed else 0


def attachments(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.cli attachments", description=ATTACHMENTS_DESCRIPTION)
    parser.add_argument("--dry-run", action="store_true", help="print the files that would move; move nothing")
    args = parser.parse_args(argv)
    report = services().attachment_mover.run(dry_run=args.dry_run)
    for line in report.would_move:
        print(line)
    if args.dry_run:
        print(f"would move {len(report.would_move)} file(s)", file=sys.stderr)
        return 0
    for tenant, outcome in sorted(report.tenants.items()):
        error = f" ({outcome.error})" if outcome.error else ""
        print(f"{tenant}: {outcome.state}{error}", file=sys.stderr)
    print(
        f"moved {report.total('moved')} file(s) ({report.total('bytes_moved')} bytes uploaded, "
        f"{report.total('already_there')} already in SharePoint), {report.total('failed')} refused "
        f"in {report.duration_s:.1f} s",
        file=sys.stderr,
    )
    failed = any(outcome.state in ("failing", "storage_unavailable") for outcome in report.tenants.values())
    return 1 if failed else 0


def audit(argv: list[str]) -> int:
    """Check a tenant's (or _system's) audit chain: exit 0 when whole, 1 naming the first break."""
    # An id is checked before storage is read, as on every route: a path-like scope would list another prefix.
    if len(argv) != 2 or argv[0] != "verify" or not (argv[1] == SYSTEM or is_valid_id(argv[1])):
        print(AUDIT_USAGE, file=sys.stderr)
        return 2
    wired = services()
    result = AuditLog(wired.storage, wired.clock).verify(argv[1])
    print(f"{argv[1]}: {result.entries} entries, {result.detail}")
    if not result.ok:
        # The detail names a day blob and an entry number: no personal data.
        wired.dpo.emit(
            argv[1], AUDIT_VERIFICATION_FAILED, {"scope": argv[1], "entries": result.entries, "detail": result.detail}
        )
        wired.dpo.settle()
    return 0 if result.ok else 1


def mailchimp_activity(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m shared.cli mailchimp-activity",
        description="Read Mailchimp campaign activity (opens, clicks, bounces) into mailchimpevent datasets once.",
    )
    parser.parse_args(argv)
    wired = services()
    run = wired.mailchimp.read_activity(wired.settings.mailchimp_activity_pages)
    for tenant, problems in sorted(run.problems.items()):
        print(f"{tenant}: {'; '.join(problems)}", file=sys.stderr)
    print(
        f"read {run.pages} page(s): {run.stored} record(s) stored, {run.skipped} skipped, in {run.datasets} dataset(s)",
        file=sys.stderr,
    )
    return 1 if run.problems else 0


COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "purge": purge,
    "audit": audit,
    "deliver": deliver,
    "mailchimp-activity": mailchimp_activity,
    "attachments": attachments,
}


def run(command: str, argv: list[str]) -> int:
    return run_command(command, COMMANDS[command], argv)


def run_command(name: str, command: Callable[[list[str]], int], argv: list[str]) -> int:
    """One command; a bad setting or unreachable storage ends it with one line (never a traceback): exit 2 for
    a setting, the operator's to fix, and 1 for anything else the command could not do. The storage layer's own
    warning of each failed request would print before it (Python's last-resort handler): the final line says it."""
    logging.getLogger("packcloud.storage").setLevel(logging.ERROR)
    try:
        with storage_errors():
            return command(argv)
    except SettingsError as error:
        print(f"{name}: {error}", file=sys.stderr)
        return 2
    except PackCloudError as error:
        print(f"{name}: {error.code}: {error.detail}", file=sys.stderr)
        return 1


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        print(f"usage: python -m shared.cli {'|'.join(COMMANDS)} ...", file=sys.stderr)
        return 2
    return run(argv[0], argv[1:])


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
