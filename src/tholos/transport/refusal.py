"""A request a node refuses, as its RPC handlers raise it and its transports carry it."""

from __future__ import annotations

import json


class RequestRefused(Exception):
    """A request this node refuses; `culprits` names nodes proven to have misbehaved."""

    def __init__(self, message: str, culprits: tuple[int, ...] = ()) -> None:
        self.culprits = culprits
        super().__init__(message)

    def details(self) -> str:
        return json.dumps({"error": str(self), "culprits": list(self.culprits)})
