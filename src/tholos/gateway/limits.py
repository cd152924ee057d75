"""Per-client request rates (token buckets) and key-creation quotas (keys per rolling hour).

Both answer with the wait that would have made the call succeed, for `429` + `Retry-After`."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from tholos.gateway.identities import ApiClient

HOUR = 3600.0


@dataclass
class TokenBucket:
    rate: float  # tokens per second
    burst: int
    tokens: float = -1.0
    at: float = 0.0

    def take(self, now: float, n: float = 1.0) -> float:
        """Take `n` tokens; 0.0 if they were there, else the seconds until they will be."""
        if self.tokens < 0:
            self.tokens, self.at = float(self.burst), now
        self.tokens = min(float(self.burst), self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= n:
            self.tokens -= n
            return 0.0
        return (n - self.tokens) / self.rate


@dataclass
class KeyWindow:
    """Keys created in the last hour, as (time, count) entries."""

    entries: deque[tuple[float, int]] = field(default_factory=deque)
    total: int = 0

    def take(self, now: float, n: int, allowed: int) -> float:
        while self.entries and self.entries[0][0] <= now - HOUR:
            self.total -= self.entries.popleft()[1]
        if self.total + n <= allowed:
            self.entries.append((now, n))
            self.total += n
            return 0.0
        if n > allowed:
            return HOUR
        # wait until enough of the oldest entries have left the window
        need, freed = self.total + n - allowed, 0
        for at, count in self.entries:
            freed += count
            if freed >= need:
                return at + HOUR - now
        return HOUR


class Limiter:
    """Rate and quota state of every API client (in memory: limits restart with the gateway)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._buckets: dict[str, TokenBucket] = {}
        self._keys: dict[str, KeyWindow] = {}

    def request(self, client: ApiClient) -> float:
        """One request by `client`: 0.0 if allowed, else seconds to wait."""
        lim = client.limits
        if lim.rate is None:
            return 0.0
        b = self._buckets.get(client.name)
        if b is None or b.rate != lim.rate or b.burst != lim.burst:
            b = self._buckets[client.name] = TokenBucket(lim.rate, lim.burst)
        return b.take(self.clock())

    def keys(self, client: ApiClient, n: int) -> float:
        """`client` creates `n` keys: 0.0 if within its hourly quota (then counted), else the wait."""
        allowed = client.limits.keys_per_hour
        if allowed is None:
            return 0.0
        return self._keys.setdefault(client.name, KeyWindow()).take(self.clock(), n, allowed)


def retry_after(seconds: float) -> str:
    """A Retry-After value: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))
