"""CPU-per-operation sampling of `tholos bench` (bench/cpu.py): /proc reading and the table columns."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tholos.bench import cpu, run

# Burns `BURN` s of its own CPU time (not wall time: no timing flake), reports, then idles.
BURN = 0.3
CHILD = (
    "import sys, time\n"
    f"while time.process_time() < {BURN}: pass\n"
    "print('done', flush=True)\n"
    "sys.stdin.read()\n"
)


@pytest.fixture
def busy_child() -> Iterator[subprocess.Popen[str]]:
    p = subprocess.Popen(
        [sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert p.stdout is not None and p.stdout.readline() == "done\n"
    yield p
    p.communicate("")


def test_proc_cpu_seconds_measures_busy_child(busy_child: subprocess.Popen[str]) -> None:
    s = cpu.proc_cpu_seconds(busy_child.pid)
    # At least the burnt CPU (minus one clock tick per field), at most that plus interpreter start.
    assert BURN - 0.03 <= s < BURN + 1.0
    assert cpu.proc_cpu_seconds(busy_child.pid) - s < 0.05  # idle now: hardly grows


def test_proc_cpu_seconds_missing_pid() -> None:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()  # reaped: /proc/PID is gone
    with pytest.raises(ProcessLookupError, match=str(p.pid)):
        cpu.proc_cpu_seconds(p.pid)


def test_per_op() -> None:
    before = {"node-1": 1.0, "node-2": 2.0, "gateway": 0.5, "client": 3.0}
    after = {"node-1": 1.3, "node-2": 2.1, "gateway": 0.6, "client": 3.2}
    r = cpu.per_op(before, after, 100)
    assert r.pop("cpu_us_each_node") == pytest.approx({"node-1": 3000, "node-2": 1000})
    assert r == pytest.approx(
        {
            "cpu_us_nodes": 4000,
            "cpu_us_per_node": 2000,
            "cpu_us_gateway": 1000,
            "cpu_us_client": 2000,
        }
    )
    assert cpu.per_op(before, after, 0) == {}


def test_measure_and_table_have_cpu_columns(busy_child: subprocess.Popen[str]) -> None:
    async def op(i: int) -> int:
        t = time.process_time()
        while time.process_time() - t < 0.002:  # some client CPU per op
            pass
        await asyncio.sleep(0)
        return 1

    pids = {"node-1": busy_child.pid, "gateway": busy_child.pid}
    res = asyncio.run(run._measure(2, 0.0, op, total=20, cpu_pids=pids))
    assert res["cpu_us_client"] > 0
    assert res["cpu_us_nodes"] >= 0 and res["cpu_us_gateway"] >= 0
    assert res["cpu_us_per_node"] == res["cpu_us_nodes"]  # one node
    row = {"n": 1, "t": 1, "scheme": "x", "mode": "m", "batch": 1, "concurrency": 2, **res}
    header, align, line = run.table([row]).splitlines()[:3]
    assert "CPU µs/op: nodes (per node) | gateway | client |" in header
    assert header.count("|") == align.count("|") == line.count("|")
    assert line.endswith(
        f" {res['cpu_us_nodes']:.0f} ({res['cpu_us_per_node']:.0f}) | "
        f"{res['cpu_us_gateway']:.0f} | {res['cpu_us_client']:.0f} |"
    )
    no_cpu = asyncio.run(run._measure(1, 0.0, op, total=2))
    assert not any(k.startswith("cpu_") for k in no_cpu)
    row = {k: v for k, v in row.items() if not k.startswith("cpu_")}
    assert run.table([row]).splitlines()[2].endswith(" – | – | – |")


# A parent that starts the burning child and waits on stdin: its own CPU is small, its tree's is
# the child's too (as a node's signer subprocess is counted with the node).
PARENT = (
    "import subprocess, sys\n"
    f"c = subprocess.Popen([sys.executable, '-c', {CHILD!r}], stdin=subprocess.PIPE, "
    "stdout=subprocess.PIPE, text=True)\n"
    "print(c.stdout.readline(), end='', flush=True)\n"
    "sys.stdin.read()\n"
    "c.communicate('')\n"
)


def test_tree_cpu_seconds_counts_a_live_child() -> None:
    p = subprocess.Popen(
        [sys.executable, "-c", PARENT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert p.stdout is not None and p.stdout.readline() == "done\n"
        (child,) = cpu.children(p.pid)
        assert cpu.tree_cpu_seconds(p.pid) >= cpu.proc_cpu_seconds(p.pid) + BURN - 0.03
        assert cpu.tree_cpu_seconds(p.pid) >= cpu.proc_cpu_seconds(child)
    finally:
        p.communicate("")
    assert cpu.children(p.pid) == []  # gone: no children, no error
