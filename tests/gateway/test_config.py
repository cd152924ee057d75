"""Gateway config files: defaults and the optional knobs an operator may set."""

from __future__ import annotations

import json
from pathlib import Path

from tholos.cluster.layout import ClusterDir, init_cluster
from tholos.gateway.config import GatewayConfig


def _config(tmp_path: Path, **extra: object) -> GatewayConfig:
    init_cluster(tmp_path / "c", 4, 2)
    path = ClusterDir(tmp_path / "c").gateway_config
    d = json.loads(path.read_text())
    d.update(extra)
    path.write_text(json.dumps(d))
    return GatewayConfig.load(path)


def test_defaults_from_cluster_init(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    assert cfg.recommit_seconds == 5.0 and cfg.threshold == 2 and sorted(cfg.nodes) == [1, 2, 3, 4]


def test_recommit_can_be_tuned_or_switched_off(tmp_path: Path) -> None:
    assert _config(tmp_path, recommit_seconds=30).recommit_seconds == 30.0
    assert _config(tmp_path / "off", recommit_seconds=None).recommit_seconds is None
