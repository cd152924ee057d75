"""`tholos cluster init` on a directory that holds a cluster (as `make run` leaves run/local) says
what to do instead, and changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tholos.cluster.layout import ClusterError, init_cluster


def test_second_init_names_cluster_up_and_keeps_the_cluster(tmp_path: Path) -> None:
    root = tmp_path / "local"
    init_cluster(root, 2, 1)
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    with pytest.raises(ClusterError) as exc:
        init_cluster(root, 2, 1)
    assert "tholos cluster up" in str(exc.value) and "make run" in str(exc.value)
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before
