"""A per-client token bucket inside one instance: a courtesy limit against a runaway script.

Best effort by design: each instance counts on its own and forgets on restart, so the firewall in front
of the function app (Front Door / Application Gateway WAF rate-limit rules) is the real limit.
"""

from __future__ import annotations

import math
import threading

from cachetools import LRUCache

from shared.core.clock import Clock

MAX_CLIENTS = 50_000  # memory stays bounded: the least recently seen clients are forgotten first


class RateLimiter:
    def __init__(self, per_minute: int, clock: Clock, max_clients: int = MAX_CLIENTS) -> None:
        self._rate = per_minute / 60.0
        self._burst = float(per_minute)
        self._clock = clock
        self._buckets: LRUCache[str, tuple[float, float]] = LRUCache(maxsize=max_clients)
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self._rate > 0

    def take(self, client: str) -> int | None:
        """Spend one token for this client; None when allowed, else the seconds to wait."""
        if not self.enabled:
            return None
        now = self._clock.now().timestamp()
        with self._lock:
            tokens, seen = self._buckets.get(client, (self._burst, now))
            tokens = min(self._burst, tokens + max(0.0, now - seen) * self._rate)
            if tokens < 1.0:
                self._buckets[client] = (tokens, now)
                return max(1, math.ceil((1.0 - tokens) / self._rate))
            self._buckets[client] = (tokens - 1.0, now)
            return None
