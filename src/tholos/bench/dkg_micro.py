"""Micro-benchmark of the distributed key generation for `make bench`: every participant in one
thread, so per-participant time is what one node spends."""

from __future__ import annotations

import time
from typing import Any

from tholos.crypto.dkg import run_dkg
from tholos.crypto.groups.base import Group


def bench_dkg(group: Group[Any], t: int, n: int, iterations: int = 50) -> dict[str, Any]:
    """Time `iterations` in-memory DKGs; per-participant cost is total / (iterations · n).

    All n participants run in this one thread, so per-participant time is what one node spends.
    """
    ids = list(range(1, n + 1))
    run_dkg(group, t, ids, b"warmup")
    start = time.perf_counter()
    for k in range(iterations):
        run_dkg(group, t, ids, b"bench-%d" % k)
    total = time.perf_counter() - start
    per_participant = total / (iterations * n)
    return {
        "group": group.name,
        "t": t,
        "n": n,
        "iterations": iterations,
        "dkg_ms": 1000 * total / iterations,
        "per_participant_ms": 1000 * per_participant,
        "participant_dkgs_per_s": 1 / per_participant,
        "dkgs_per_s_one_core": iterations / total,
    }
