"""Where a local cluster's files live (manifest, node and gateway configs, TLS, run state)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tholos.transport.tls import TlsFiles


class ClusterError(Exception):
    pass


@dataclass(frozen=True)
class ClusterDir:
    root: Path

    @property
    def manifest(self) -> Path:
        return self.root / "cluster.json"

    def load(self) -> dict[str, Any]:
        if not self.manifest.exists():
            raise ClusterError(
                f"no cluster at {self.root} (run `tholos cluster init --dir {self.root}`)"
            )
        d: dict[str, Any] = json.loads(self.manifest.read_text())
        return d

    def node_dir(self, i: int) -> Path:
        return self.root / f"node-{i}"

    def passphrase_file(self, i: int) -> Path:
        """Development only: node i's unsealing passphrase, kept outside the node's directory."""
        return self.root / "secrets" / f"node-{i}.passphrase"

    def node_config(self, i: int) -> Path:
        return self.node_dir(i) / "node.json"

    @property
    def gateway_config(self) -> Path:
        return self.root / "gateway" / "gateway.json"

    @property
    def client_tls(self) -> TlsFiles:
        return TlsFiles(
            self.root / "ca" / "ca.pem",
            self.root / "client" / "client.pem",
            self.root / "client" / "client.key",
        )

    @property
    def run_dir(self) -> Path:
        return self.root / "run"
