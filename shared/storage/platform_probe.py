"""The platform's name, asked for in the background at start-up.

Every Azure SDK client names the platform in its User-Agent with `platform.platform()` (azure-core's
UserAgentPolicy, also in the storage SDK's generated client, where no option replaces it). The first call of a
process runs `uname -p` in a child process and reads the interpreter's binary for its C library: 5 to 7 ms, most of
it waiting for the child, which a new instance's first request spent making its storage client. Asked in a thread
while the app is still being imported, the answer is cached by the time that request comes.
"""

from __future__ import annotations

import platform
import threading

THREAD_NAME = "platform-probe"


def probe_platform_in_background() -> threading.Thread:
    probe = threading.Thread(target=platform.platform, name=THREAD_NAME, daemon=True)
    probe.start()
    return probe
