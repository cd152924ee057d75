"""`tholos cluster up | down | status`: node and gateway processes of a local cluster directory."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tholos.cluster.layout import ClusterDir, ClusterError


def _pid_file(cd: ClusterDir, name: str) -> Path:
    return cd.run_dir / f"{name}.pid"


def _alive(pid: int, marker: str) -> bool:
    """The process exists and is ours (its command line names our config: no PID-reuse kills)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\x00", b" ").decode()
    except OSError:
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True
    return marker in cmdline and "<defunct>" not in cmdline


def _read_pid(cd: ClusterDir, name: str) -> int | None:
    try:
        return int(_pid_file(cd, name).read_text().strip())
    except (OSError, ValueError):
        return None


def processes(cd: ClusterDir) -> dict[str, tuple[list[str], Path]]:
    """name -> (argv, config path) of every process of the cluster."""
    m = cd.load()
    py = [sys.executable, "-m", "tholos"]
    out = {}
    ids = sorted(int(i) for i in m.get("node_addresses", {})) or range(1, int(m["nodes"]) + 1)
    outside = {int(i) for i in m.get("external_nodes", [])}  # run on their own machines
    for i in ids:
        if i in outside:
            continue
        cfg = cd.node_config(i)
        out[f"node-{i}"] = ([*py, "node", "--config", str(cfg)], cfg)
    out["gateway"] = ([*py, "gateway", "--config", str(cd.gateway_config)], cd.gateway_config)
    from tholos.cluster.gateways import extra_gateway_configs

    for name, cfg in extra_gateway_configs(cd).items():  # more gateways on a shared store
        out[name] = ([*py, "gateway", "--config", str(cfg)], cfg)
    return out


def start_process(
    cd: ClusterDir, name: str, argv: list[str], env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    cd.run_dir.mkdir(exist_ok=True)
    log = open(cd.run_dir / f"{name}.log", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        argv,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, **(env or {})},
    )
    log.close()
    _pid_file(cd, name).write_text(str(proc.pid))
    return proc


def status(cd: ClusterDir) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, (_argv, cfg) in processes(cd).items():
        pid = _read_pid(cd, name)
        out[name] = {"pid": pid, "running": pid is not None and _alive(pid, str(cfg))}
    return out


def up(
    cd: ClusterDir, wait: float = 30.0, extra_env: dict[str, dict[str, str]] | None = None
) -> dict[str, Any]:
    from tholos.client import Client

    m = cd.load()
    started: dict[str, subprocess.Popen[bytes]] = {}
    for name, (argv, cfg) in processes(cd).items():
        pid = _read_pid(cd, name)
        if pid is not None and _alive(pid, str(cfg)):
            continue
        started[name] = start_process(cd, name, argv, (extra_env or {}).get(name))
    client = Client(m["gateway"], cd.client_tls)
    deadline = time.monotonic() + wait
    last: Any = None
    try:
        while time.monotonic() < deadline:
            for name, proc in started.items():
                if proc.poll() is not None:
                    tail = _tail(cd.run_dir / f"{name}.log")
                    raise ClusterError(f"{name} exited during start-up: {tail}")
            try:
                h = client.get("/v1/health")
                last = h
                if h["nodes_up"] == h["nodes"]:
                    return {"gateway": m["gateway"], "started": list(started), "health": h}
            except Exception as exc:
                last = str(exc)
            time.sleep(0.2)
    finally:
        client.close()
    raise ClusterError(f"cluster not healthy after {wait:.0f}s: {last}")


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


def _exited(pid: int) -> bool:
    """No thread of process `pid` runs any more (it is gone, or a zombie left for its parent to
    reap). Not `_alive`: once the main thread has exited its command line reads empty while the
    process's other threads may still hold the node's port and database open."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        threads = len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state in ("Z", "X") and threads <= 1


def _wait_exited(pids: list[int], wait: float) -> list[int]:
    """Waits up to `wait` seconds for every process of `pids` to exit; returns those still running."""
    deadline = time.monotonic() + wait
    running = [p for p in pids if not _exited(p)]
    while running and time.monotonic() < deadline:
        time.sleep(0.05)
        running = [p for p in running if not _exited(p)]
    return running


def _signal(cd: ClusterDir, name: str, cfg: Path, sig: int) -> int | None:
    """Sends `sig` to process `name` if it runs and is ours; its pid, or None."""
    pid = _read_pid(cd, name)
    if pid is None or not _alive(pid, str(cfg)):
        _pid_file(cd, name).unlink(missing_ok=True)
        return None
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return None
    return pid


def _stop(
    cd: ClusterDir, names: dict[str, Path], sig: int, wait: float
) -> tuple[list[str], list[str]]:
    """Signals the processes `names` (name -> config), waits until every one has exited, killing
    those still running after `wait` seconds. Returns (stopped, killed); raises ClusterError if a
    killed process still runs (its pid file is then kept)."""
    pids = {n: pid for n, cfg in names.items() if (pid := _signal(cd, n, cfg, sig)) is not None}
    killed = [n for n, p in pids.items() if p in _wait_exited(list(pids.values()), wait)]
    for n in killed:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pids[n], signal.SIGKILL)
    stuck = [n for n in killed if pids[n] in _wait_exited([pids[k] for k in killed], 5.0)]
    for n in pids:
        if n not in stuck:
            _pid_file(cd, n).unlink(missing_ok=True)
    if stuck:
        raise ClusterError(f"still running after SIGKILL: {', '.join(stuck)}")
    return list(pids), killed


def stop_process(
    cd: ClusterDir, name: str, cfg: Path, sig: int = signal.SIGTERM, wait: float = 10.0
) -> bool:
    """Stops one process and returns once it has exited (SIGKILL after `wait` seconds); False
    if it was not running."""
    stopped, _killed = _stop(cd, {name: cfg}, sig, wait)
    return bool(stopped)


def down(cd: ClusterDir, wait: float = 10.0) -> dict[str, Any]:
    """Stops the gateway, then every node, and returns only once all of them have exited: a
    process still running `wait` seconds after SIGTERM is killed (and listed under "killed")."""
    procs = processes(cd)
    gateways = {n: cfg for n, (_argv, cfg) in procs.items() if n.startswith("gateway")}
    stopped, killed = _stop(cd, gateways, signal.SIGTERM, wait)
    nodes = {n: cfg for n, (_argv, cfg) in procs.items() if n not in gateways}
    more, more_killed = _stop(cd, nodes, signal.SIGTERM, wait)
    return {"stopped": stopped + more, "killed": killed + more_killed}


__all__ = ["down", "json", "status", "up"]
