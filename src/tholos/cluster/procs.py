"""`tholos cluster up | down | status`: node and gateway processes of a local cluster directory."""

from __future__ import annotations

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
    for i in range(1, int(m["nodes"]) + 1):
        cfg = cd.node_config(i)
        out[f"node-{i}"] = ([*py, "node", "--config", str(cfg)], cfg)
    out["gateway"] = ([*py, "gateway", "--config", str(cd.gateway_config)], cd.gateway_config)
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


def stop_process(
    cd: ClusterDir, name: str, cfg: Path, sig: int = signal.SIGTERM, wait: float = 10.0
) -> bool:
    pid = _read_pid(cd, name)
    if pid is None or not _alive(pid, str(cfg)):
        _pid_file(cd, name).unlink(missing_ok=True)
        return False
    os.kill(pid, sig)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and _alive(pid, str(cfg)):
        time.sleep(0.05)
    if _alive(pid, str(cfg)):
        os.kill(pid, signal.SIGKILL)
    _pid_file(cd, name).unlink(missing_ok=True)
    return True


def down(cd: ClusterDir) -> dict[str, Any]:
    stopped = []
    procs = processes(cd)
    for name in ["gateway", *[n for n in procs if n != "gateway"]]:
        if stop_process(cd, name, procs[name][1]):
            stopped.append(name)
    return {"stopped": stopped}


__all__ = ["down", "json", "status", "up"]
