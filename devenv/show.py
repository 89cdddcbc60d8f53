"""`make show TENANT=demo` (`.venv/bin/python -m devenv.show TENANT`): print the records held for a tenant in
the local Azurite (development aid). Like the commands of shared/cli.py it reads local.settings.json (an exported
setting wins) and ends a bad setting (exit 2) or unreachable storage (exit 1) with one line."""

from __future__ import annotations

import json
import sys

from shared.cli import run_command, services
from shared.core.ids import ID_PATTERN, is_valid_id
from shared.storage.blobs import RECORDS

USAGE = f"usage: python -m devenv.show TENANT (a tenant id, {ID_PATTERN})"


def show(argv: list[str]) -> int:
    records = services().storage.container(RECORDS)
    count = 0
    for blob in records.list_blobs(name_starts_with=f"{argv[0]}/", include=["tags"]):
        record = json.loads(records.download_blob(blob.name).readall())
        print(json.dumps({"blob": blob.name, "tags": blob.tags, **record}, indent=2))
        count += 1
    print(f"{count} record(s)", file=sys.stderr)
    return 0


def main(argv: list[str]) -> int:
    # The id is checked before storage is read: a path-like argument would list another tenant's prefix.
    if len(argv) != 1 or not is_valid_id(argv[0]):
        print(USAGE, file=sys.stderr)
        return 2
    return run_command("show", show, argv)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
