"""When and how long to retry: transport errors, 429 and 502/503/504, with exponential backoff
(or the server's Retry-After). A POST is retried only with an Idempotency-Key, the same on every
attempt, so the gateway answers a retry with the first answer (gateway/idempotency.py)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

RETRY_STATUSES = frozenset({429, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4  # in all, the first included
    backoff: float = 0.25  # seconds, doubled per attempt
    max_wait: float = 10.0

    def wait(self, attempt: int, retry_after: str | None) -> float:
        if retry_after is not None:
            try:
                return min(float(retry_after), self.max_wait)
            except ValueError:
                pass
        return float(min(self.backoff * 2**attempt, self.max_wait))


def new_idempotency_key() -> str:
    return "tholos-" + secrets.token_hex(16)
