"""The reference screening service: a score table (address -> risk 0..100, unknown addresses get
`default_score`) served over HTTP as signed attestations (`tholos.governance.screening`).

A real deployment puts an analytics provider behind the same answer; what the nodes check is
only the signature of a service key registered by a quorum-signed document.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Annotated, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI, Query

from tholos.governance.screening import ScreeningAttestation, issue
from tholos.governance.transactions import normalise


class ScreeningService:
    def __init__(
        self,
        name: str,
        key: Ed25519PrivateKey,
        scores: Mapping[tuple[str, str], int],
        *,
        default_score: int = 100,
        lifetime: int = 3600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self._key = key
        self._scores = {(chain, normalise(addr)): s for (chain, addr), s in scores.items()}
        self.default_score = default_score
        self.lifetime = lifetime
        self._clock = clock

    def screen(self, chain: str, address: str) -> ScreeningAttestation:
        score = self._scores.get((chain, normalise(address)), self.default_score)
        return issue(
            self.name,
            self._key,
            chain=chain,
            address=address,
            risk_score=score,
            issued_at=int(self._clock()),
            lifetime=self.lifetime,
        )

    def app(self) -> FastAPI:
        app = FastAPI(title="tholos reference screening service")

        @app.get("/v1/screen")
        def screen(
            chain: Annotated[str, Query(min_length=1, max_length=64)],
            address: Annotated[str, Query(min_length=1, max_length=256)],
        ) -> dict[str, Any]:
            return self.screen(chain, address).model_dump(mode="json")

        return app
