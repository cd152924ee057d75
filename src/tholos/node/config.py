"""Node configuration (JSON file written by `tholos cluster init`, or by an operator)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tholos.transport.e2e import PeerIdentity
from tholos.transport.tls import TlsFiles


@dataclass(frozen=True)
class NodeConfig:
    node_id: int
    listen: str
    db: Path
    tls: TlsFiles
    identity_file: Path
    passphrase_file: Path | None
    key_file: Path | None
    roster: dict[int, PeerIdentity]
    nonce_pool_max: int = 200_000
    min_threshold: int = 1  # the node refuses to create keys with a lower threshold
    metrics_port: int | None = None  # plain-HTTP GET /metrics for Prometheus; None: off
    metrics_host: str = "127.0.0.1"
    #: open shares only in a separate, hardened signer process (node/signer/)
    signer: bool = False
    #: opened shares the node (and its signer) keeps, least recently used dropped; 0: none
    share_cache: int = 10_000

    @classmethod
    def load(cls, path: Path) -> NodeConfig:
        d: dict[str, Any] = json.loads(path.read_text())
        base = path.parent

        def p(v: str | None) -> Path | None:
            return None if v is None else (base / v).resolve()

        roster = {int(r["node_id"]): PeerIdentity.from_dict(r) for r in d["roster"]}
        tls = d["tls"]
        return cls(
            node_id=int(d["node_id"]),
            listen=str(d["listen"]),
            db=p(d["db"]) or base / "node.db",
            tls=TlsFiles(p(tls["ca"]) or base, p(tls["cert"]) or base, p(tls["key"]) or base),
            identity_file=p(d["identity_file"]) or base / "identity.key",
            passphrase_file=p(d.get("passphrase_file")),
            key_file=p(d.get("key_file")),
            roster=roster,
            nonce_pool_max=int(d.get("nonce_pool_max", 200_000)),
            min_threshold=int(d.get("min_threshold", 1)),
            metrics_port=None if d.get("metrics_port") is None else int(d["metrics_port"]),
            metrics_host=str(d.get("metrics_host", "127.0.0.1")),
            signer=bool(d.get("signer", False)),
            share_cache=_count("share_cache", d.get("share_cache", 10_000)),
        )


def _count(name: str, value: Any) -> int:
    """A whole number of 0 or more from the config file; ValueError names the field."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"node config {name} must be a whole number >= 0, not {value!r}")
    return value
