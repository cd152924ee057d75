"""`add_gateway`: a second gateway's config for a cluster on a shared PostgreSQL store (files
only; tests/cluster/test_ha_gateways.py runs two gateways)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from tholos.cluster.gateways import add_gateway
from tholos.cluster.layout import ClusterDir, ClusterError, init_cluster
from tholos.cluster.procs import processes
from tholos.gateway.config import GatewayConfig

STORE = "postgresql://tholos@127.0.0.1:5432/tholos"


def test_a_second_gateway_shares_the_store(tmp_path: Path) -> None:
    init_cluster(tmp_path, 3, 2)
    cd = ClusterDir(tmp_path)
    out = add_gateway(cd, "b", STORE)
    first, second = GatewayConfig.load(cd.gateway_config), GatewayConfig.load(Path(out["config"]))
    assert first.store == second.store == STORE
    assert second.port != first.port and out["url"] == second.url
    assert second.nodes == first.nodes and second.roster == first.roster
    assert second.api_tls is not None and second.api_tls.cert.exists()
    assert second.node_tls.key.exists()
    assert stat.S_IMODE(Path(out["config"]).stat().st_mode) == 0o600
    assert stat.S_IMODE(Path(out["config"]).parent.stat().st_mode) == 0o700
    assert "gateway-b" in processes(cd)


@pytest.mark.parametrize(
    ("name", "store", "why"),
    [
        ("B", STORE, "gateway name"),
        ("-b", STORE, "gateway name"),
        ("b", "sqlite:///x.db", "postgresql"),
        ("b", str(Path("gateway.db")), "postgresql"),
    ],
)
def test_bad_names_and_stores_are_refused(tmp_path: Path, name: str, store: str, why: str) -> None:
    init_cluster(tmp_path, 3, 2)
    cd = ClusterDir(tmp_path)
    before = cd.gateway_config.read_text()
    with pytest.raises(ClusterError, match=why):
        add_gateway(cd, name, store)
    assert cd.gateway_config.read_text() == before  # nothing changed
    assert not list(tmp_path.glob("gateway-*"))


def test_a_name_taken_is_refused_and_a_bad_store_in_the_config_is_named(tmp_path: Path) -> None:
    init_cluster(tmp_path, 3, 2)
    cd = ClusterDir(tmp_path)
    add_gateway(cd, "b", STORE)
    with pytest.raises(ClusterError, match="exists"):
        add_gateway(cd, "b", STORE)
    cfg = json.loads(cd.gateway_config.read_text())
    cfg["store"] = "mysql://x"
    cd.gateway_config.write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="store must be a postgresql"):
        GatewayConfig.load(cd.gateway_config)
