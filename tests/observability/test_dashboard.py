"""deploy/grafana/tholos.json queries only metrics the gateway and the nodes expose."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.gateway.conftest import Cluster
from tholos.gateway.observe import gateway_registry
from tholos.node.metrics import node_registry
from tholos.observability.metrics import exposition

DASHBOARD = Path(__file__).parents[2] / "deploy" / "grafana" / "tholos.json"
SERIES = re.compile(r"\b(tholos_[a-z0-9_]+)")


def exposed(tmp_path: Path) -> set[str]:
    """Every sample name the gateway and a node can expose (histogram _bucket/_count/_sum)."""
    c = Cluster(tmp_path, 3, 2)
    names: set[str] = set()
    for reg in (gateway_registry(c.gateway), node_registry(c.services[1])):
        for fam in text_string_to_metric_families(exposition(reg)[0].decode()):
            names.add(fam.name)
            kinds = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
            names.update(fam.name + s for s in kinds.get(fam.type, ()))
    return names


def test_dashboard_uses_exposed_metrics(tmp_path: Path) -> None:
    dash: dict[str, Any] = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    used = {name for e in exprs for name in SERIES.findall(e)}
    names = exposed(tmp_path)
    assert len(used) >= 10
    assert used <= names, sorted(used - names)
    assert len({p["id"] for p in dash["panels"]}) == len(dash["panels"])
