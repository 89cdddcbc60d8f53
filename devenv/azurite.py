"""Start and stop a real Azurite (Blob Storage emulator) for development, tests and benchmarks."""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AZURITE_BIN = ROOT / "node_modules" / ".bin" / "azurite-blob"
ACCOUNT = "devstoreaccount1"
# Azurite's published development key (the same for every Azurite): not a secret.
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def connection_string(port: int) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
        f"BlobEndpoint=http://127.0.0.1:{port}/{ACCOUNT};"
    )


def wait_for_port(port: int, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listened on port {port} within {timeout} s")


@dataclass
class Azurite:
    port: int
    process: subprocess.Popen[bytes]
    location: Path
    # A temporary folder start_azurite made is removed with the process; a folder given to it is kept.
    temporary: bool = False

    @property
    def connection_string(self) -> str:
        return connection_string(self.port)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.temporary:
            shutil.rmtree(self.location, ignore_errors=True)


def start_azurite(port: int | None = None, location: Path | None = None) -> Azurite:
    """Azurite on 127.0.0.1 with telemetry off; data under `location` (a temporary folder by default).

    Never `--inMemoryPersistence`: there every upload is an extent of its own, and Azurite's garbage collection,
    every 10 minutes, deletes each unreferenced one with a scan of all of them, holding its only thread for
    minutes once a few thousand blobs were overwritten (it stalled the test session for 6 minutes). On disk,
    uploads share extent files of up to 64 MB, and the collection has a handful to look at.
    """
    if not AZURITE_BIN.exists():
        raise RuntimeError(f"{AZURITE_BIN} is missing: run `make test` or `make run`, which install it")
    port = port or free_port()
    temporary = location is None
    location = location or Path(tempfile.mkdtemp(prefix="azurite-"))
    location.mkdir(parents=True, exist_ok=True)
    command = [
        str(AZURITE_BIN),
        "--silent",
        "--disableTelemetry",
        "--skipApiVersionCheck",
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        str(port),
        "--location",
        str(location),
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, 30, process)
    except Exception:
        process.kill()
        raise
    return Azurite(port, process, location, temporary)
