"""`tholos cluster gateway-add`: more gateways for one cluster, all on one PostgreSQL store.

Gateways in high availability share their state (keys, governed requests, approvals,
idempotency keys, tokens) in PostgreSQL; each keeps its own audit chain (same audit key, its own
`audit.db`). `add_gateway` sets `store` in the first gateway's config and writes
D/gateway-NAME/gateway.json: the first's config with another port, its certificates by absolute
path (the REST certificate names the host, not the port). `tholos cluster up` starts them all."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from tholos.cluster.directory import ClusterDir, ClusterError

NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")


def extra_gateway_configs(cd: ClusterDir) -> dict[str, Path]:
    """ "gateway-NAME" -> config of every gateway added to the cluster."""
    return {
        p.parent.name: p
        for p in sorted(cd.root.glob("gateway-*/gateway.json"))
        if NAME.match(p.parent.name.removeprefix("gateway-"))
    }


def set_store(cd: ClusterDir, store: str) -> None:
    """Point the cluster's first gateway at the shared store."""
    if not store.startswith(("postgresql://", "postgres://")):
        raise ClusterError("a shared store is a postgresql://… URL")
    cfg = json.loads(cd.gateway_config.read_text())
    cfg["store"] = store
    _write(cd.gateway_config, cfg)


def add_gateway(cd: ClusterDir, name: str, store: str, port: int = 0) -> dict[str, Any]:
    """Write D/gateway-NAME (0700) for another gateway of this cluster on `store`; the first
    gateway is switched to `store` too (both must share it). Returns its name, URL and config."""
    from tholos.cluster.layout import free_port

    if not NAME.match(name):
        raise ClusterError("gateway name: 1-32 of a-z, 0-9 and -, starting with a letter or digit")
    target = cd.root / f"gateway-{name}"
    if target.exists():
        raise ClusterError(f"{target} exists already")
    set_store(cd, store)
    first = cd.gateway_config.parent
    cfg = json.loads(cd.gateway_config.read_text())
    for section in ("node_tls", "api_tls"):
        if cfg.get(section):
            cfg[section] = {k: str((first / v).resolve()) for k, v in cfg[section].items()}
    cfg["port"] = port or free_port(str(cfg.get("host", "127.0.0.1")))
    cfg.pop("metrics_port", None)  # one metrics port per host and port; set one by hand
    target.mkdir(mode=0o700)
    if (first / "audit.key").exists():
        shutil.copy2(first / "audit.key", target / "audit.key")
        os.chmod(target / "audit.key", 0o600)
    _write(target / "gateway.json", cfg)
    scheme = "https" if cfg.get("api_tls") else "http"
    return {
        "name": f"gateway-{name}",
        "url": f"{scheme}://{cfg.get('host', '127.0.0.1')}:{cfg['port']}",
        "config": str(target / "gateway.json"),
    }


def _write(path: Path, cfg: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(cfg, indent=2))
    os.chmod(tmp, 0o600)
    tmp.replace(path)
