"""CPU time per operation of the cluster's processes and of the bench client.

ops/s on the shared 2-core VM drifts by tens of percent between runs, with the CPU share the VM
happens to get. The CPU seconds each process spends per operation do not depend on that share, so
n=4 vs n=7 and with vs without policy compare more steadily across runs. They are steadier, not
invariant: CPU time still scales with the core's clock (frequency scaling, turbo, another host
CPU) and grows with contention (cache and TLB misses, a noisy neighbour on the host).

Nodes and gateway: utime + stime (all threads) from /proc/PID/stat, plus that of every live
descendant (a node's signer process does its share work: leaving it out hid most of a node's
CPU); client: time.process_time().
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tholos.cluster.layout import ClusterDir

Sample = dict[str, float]  # process name ("node-1", ..., "gateway", "client") -> CPU seconds


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of process `pid` in seconds; ProcessLookupError if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        raise ProcessLookupError(f"no process {pid} (/proc/{pid}/stat missing)") from None
    # The command name (field 2) may hold spaces and ')': split after the last ')'. utime and
    # stime are fields 14 and 15, i.e. 11 and 12 counting from field 3.
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """The PIDs of the live children of `pid` (from /proc/PID/task/*/children; none if gone)."""
    out: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except FileNotFoundError:
        return out
    for task in tasks:
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except FileNotFoundError:  # the thread ended meanwhile
            continue
    return out


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of `pid` and of its live descendants (a child that ended meanwhile is left
    out); ProcessLookupError if `pid` itself is gone."""
    total = proc_cpu_seconds(pid)
    for child in children(pid):
        try:
            total += tree_cpu_seconds(child)
        except ProcessLookupError:
            continue
    return total


def cluster_pids(cd: ClusterDir) -> dict[str, int] | None:
    """name -> PID of every running process of the local cluster `cd`, or None
    (with a warning: the CPU columns are then left out) when one has no local PID."""
    from tholos.cluster import procs

    st = procs.status(cd)
    missing = [name for name, s in st.items() if not s["running"]]
    if missing:
        print(f"bench: no local PID for {', '.join(missing)}: no CPU columns", file=sys.stderr)
        return None
    return {name: int(s["pid"]) for name, s in st.items()}


def sample(pids: Mapping[str, int]) -> Sample:
    """CPU seconds so far of every process in `pids` (with its descendants: a node's signer) and
    of this (client) process."""
    out = {name: tree_cpu_seconds(pid) for name, pid in pids.items()}
    out["client"] = time.process_time()
    return out


def per_op(before: Sample, after: Sample, ops: int) -> dict[str, Any]:
    """CPU µs per operation between two samples: nodes (sum and mean per node), gateway, client."""
    if ops <= 0:
        return {}
    us = {name: (after[name] - before[name]) * 1e6 / ops for name in before}
    nodes = [v for name, v in us.items() if name.startswith("node-")]
    return {
        "cpu_us_nodes": sum(nodes),
        "cpu_us_per_node": sum(nodes) / len(nodes) if nodes else float("nan"),
        "cpu_us_gateway": us.get("gateway", float("nan")),
        "cpu_us_client": us["client"],
        "cpu_us_each_node": {name: v for name, v in us.items() if name.startswith("node-")},
    }


def cells(r: Mapping[str, Any]) -> str:
    """The CPU columns of a table row: `nodes (per node) | gateway | client |`, or dashes."""
    if "cpu_us_nodes" not in r:
        return " – | – | – |"
    return (
        f" {r['cpu_us_nodes']:.0f} ({r['cpu_us_per_node']:.0f}) | {r['cpu_us_gateway']:.0f} | "
        f"{r['cpu_us_client']:.0f} |"
    )


def each_cell(r: Mapping[str, Any]) -> str:
    """Every node's CPU µs per operation, `a / b / c ...` in node order, or a dash."""
    each = r.get("cpu_us_each_node")
    if not each:
        return " – |"
    order = sorted(each, key=lambda name: int(name.split("-")[1]))
    return " " + " / ".join(f"{each[name]:.0f}" for name in order) + " |"


HEADER = " CPU µs/op: nodes (per node) | gateway | client |"
ALIGN = "---:|---:|---:|"
