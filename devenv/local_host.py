"""Start the local host (`python -m devhost`) as a process and wait until it listens."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping

from devenv.azurite import ROOT, wait_for_port


def start_local_host(port: int, env: Mapping[str, str], *, quiet: bool = True) -> subprocess.Popen[bytes]:
    output = subprocess.DEVNULL if quiet else None
    process = subprocess.Popen(
        [sys.executable, "-m", "devhost", "--root", str(ROOT), "--port", str(port)],
        cwd=ROOT,
        env=dict(env),
        stdout=output,
        stderr=output,
    )
    try:
        wait_for_port(port, 60, process)
    except Exception:
        process.kill()
        raise
    return process


def stop_local_host(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
