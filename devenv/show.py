"""`make show TENANT=demo` (`.venv/bin/python -m devenv.show TENANT`): print the records held for a tenant in
the local Azurite (development aid)."""

from __future__ import annotations

import json
import os
import sys

from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient

from devenv.run import local_settings


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m devenv.show TENANT", file=sys.stderr)
        return 2
    # As the commands of shared/cli.py: an exported setting wins over local.settings.json.
    connection = (
        os.environ.get("PACKCLOUD_STORAGE_CONNECTION_STRING") or local_settings()["PACKCLOUD_STORAGE_CONNECTION_STRING"]
    )
    records = BlobServiceClient.from_connection_string(connection).get_container_client("records")
    count = 0
    try:
        for blob in records.list_blobs(name_starts_with=f"{argv[0]}/", include=["tags"]):
            record = json.loads(records.download_blob(blob.name).readall())
            print(json.dumps({"blob": blob.name, "tags": blob.tags, **record}, indent=2))
            count += 1
    except ResourceNotFoundError:
        pass  # no container yet: nothing was ever captured here
    except AzureError as error:
        print(f"show: storage unavailable ({type(error).__name__}): is `make run` running?", file=sys.stderr)
        return 1
    print(f"{count} record(s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
