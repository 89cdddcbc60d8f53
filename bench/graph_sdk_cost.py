"""What `msgraph-sdk` would cost PackCloud's cold start and memory, against the direct HTTP client it uses.

Not part of `make bench`: the SDK is not a dependency, so it needs an interpreter where it is installed
(`python -m venv /tmp/sdk && /tmp/sdk/bin/pip install msgraph-sdk azure-identity requests`), then
`python -m bench.graph_sdk_cost /tmp/sdk/bin/python`. Each case runs in new interpreters (7, the median kept):
what is already loaded in the function app is imported first (requests, azure-core's transport, azure-identity;
for the direct client also shared/dataverse/client.py, which it builds on), then the time and the RSS growth of
importing the Graph client: `shared.attachments.graph`, or `msgraph` alone, or `msgraph` as an upload would use it
(a GraphServiceClient, the drive item and upload session request builders and models, the large file upload task).
"""

from __future__ import annotations

import statistics
import subprocess
import sys

from devenv.azurite import ROOT

PROBE = r"""
import sys, time
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
import requests, azure.core.pipeline.transport, azure.identity
mode = sys.argv[1]
if mode == "direct":
    sys.path.insert(0, sys.argv[2])
    import shared.dataverse.client
base, started = rss(), time.perf_counter()
if mode == "direct":
    import shared.attachments.graph
elif mode == "msgraph_import":
    import msgraph
else:
    from azure.identity import ClientSecretCredential
    from msgraph import GraphServiceClient
    from msgraph.generated.models.drive_item import DriveItem
    from msgraph.generated.models.upload_session import UploadSession
    from msgraph_core.tasks.large_file_upload import LargeFileUploadTask
    credential = ClientSecretCredential("00000000-0000-0000-0000-000000000000", "client", "secret")
    client = GraphServiceClient(credential, scopes=["https://graph.microsoft.com/.default"])
    item = client.drives.by_drive_id("d").items.by_drive_item_id("root:/a.bin:")
    item.create_upload_session, item.content, client.sites.by_site_id("s").drives.by_drive_id("d")
    DriveItem(), UploadSession()
print(f"{time.perf_counter() - started} {rss() - base}")
"""
ROUNDS = 7


def measure(python: str, mode: str) -> tuple[float, float]:
    runs = []
    for _ in range(ROUNDS):
        done = subprocess.run(
            [python, "-c", PROBE, mode, str(ROOT)], capture_output=True, text=True, check=True, timeout=120
        )
        seconds, megabytes = done.stdout.split()
        runs.append((float(seconds), float(megabytes)))
    return statistics.median(s for s, _ in runs), statistics.median(m for _, m in runs)


def main(argv: list[str]) -> None:
    cases = [(sys.executable, "direct")]
    if argv:
        cases += [(argv[0], "msgraph_import"), (argv[0], "msgraph_upload")]
    for python, mode in cases:
        seconds, megabytes = measure(python, mode)
        print(f"{mode}: import {seconds * 1000:.0f} ms, RSS +{megabytes:.1f} MB (medians of {ROUNDS})")


if __name__ == "__main__":
    main(sys.argv[1:])
