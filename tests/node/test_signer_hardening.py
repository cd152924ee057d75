"""The signer hardens itself: no core file, no ptrace by the same (non-root) user, its memory
locked where permitted, and it refuses to start on a key file or database open to others.

Each check has a control that shows the test can fail: the same attempt against an unhardened
process of the same user succeeds.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.node.signer_setup import make_node_dir
from tholos.node.signer.client import launch, stop
from tholos.node.signer.process import READY

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture
def nobody_dir() -> Iterator[tuple[Path, int]]:
    """A directory outside root's pytest tree (0700 there) that `nobody` owns."""
    if os.geteuid() != 0:
        pytest.skip("runs the signer as `nobody`: needs root to change user")
    uid = pwd.getpwnam("nobody").pw_uid
    d = Path(tempfile.mkdtemp(prefix="tholos-signer-test-"))
    os.chown(d, uid, uid)
    yield d, uid
    shutil.rmtree(d, ignore_errors=True)


def as_nobody(script: str, uid: int, timeout: float = 120) -> dict[str, object]:
    """Run `script` in a Python process that imports what it needs as root, then drops to
    `uid` for good (setresuid: no capability left) before the body runs; it prints one JSON
    line, returned here. (The interpreter lives under /root, which `nobody` cannot enter, so
    the process starts as root and changes user, as a service manager would.)"""
    body = PRELUDE.format(uid=uid) + textwrap.dedent(script)
    p = subprocess.run(
        [sys.executable, "-c", body],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(SRC)},
    )
    assert p.returncode == 0, p.stderr
    out: dict[str, object] = json.loads(p.stdout.strip().splitlines()[-1])
    return out


PRELUDE = """
import ctypes, json, os, signal, subprocess, sys, time
from pathlib import Path
from tholos.node.signer import process, client
from tholos.node.signer.hardening import PR_SET_DUMPABLE
libc = ctypes.CDLL("libc.so.6", use_errno=True)
os.setgroups([])
os.setresgid({uid}, {uid}, {uid})
os.setresuid({uid}, {uid}, {uid})
assert os.geteuid() == {uid}

def child(run):
    # a process of this user as it starts: dumpable (a uid change had cleared it), then `run`
    pid = os.fork()
    if pid == 0:
        libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)
        try:
            run()
        finally:
            os._exit(0)
    return pid

def wait_for(path):
    for _ in range(1200):
        if path.exists():
            return
        time.sleep(0.1)
    raise SystemExit("timed out waiting for " + str(path))

def attach(pid, out_dir):
    rc = libc.ptrace(16, pid, None, None)  # PTRACE_ATTACH
    err = ctypes.get_errno()
    if rc == 0:
        os.waitpid(pid, 0)
        libc.ptrace(17, pid, None, None)  # PTRACE_DETACH
    core = out_dir / "gcore-out"
    g = subprocess.run(["gcore", "-o", str(core), str(pid)], capture_output=True, timeout=120)
    cores = sorted(p.name for p in out_dir.iterdir() if p.name.startswith("gcore-out"))
    for p in out_dir.iterdir():
        if p.name.startswith("gcore-out"):
            p.unlink()
    return {{"attach": rc, "errno": err, "gcore_rc": g.returncode, "cores": cores}}
"""


def test_ptrace_and_gcore_by_the_same_user_fail(nobody_dir: tuple[Path, int]) -> None:
    if shutil.which("gcore") is None:
        pytest.skip("gcore (gdb) is not installed")
    d, uid = nobody_dir
    cfg, _ = make_node_dir(d / "node", uid)
    run = d / "node" / "run"
    run.mkdir(mode=0o700)
    os.chown(run, uid, uid)
    script = f"""
    sock = Path({str(run / "s.sock")!r})
    signer = child(lambda: process.main(["--config", {str(cfg)!r}, "--socket", str(sock)]))
    wait_for(sock)
    got = attach(signer, Path({str(d)!r}))
    status = client.SignerClient(sock).status()
    os.kill(signer, signal.SIGKILL)
    os.waitpid(signer, 0)
    # control: a process of the same user that did not harden itself
    ready = Path({str(d)!r}) / "control-ready"
    plain = child(lambda: (ready.touch(), time.sleep(600)))
    wait_for(ready)
    control = attach(plain, Path({str(d)!r}))
    os.kill(plain, signal.SIGKILL)
    os.waitpid(plain, 0)
    print(json.dumps({{"signer": got, "control": control, "status": status}}))
    """
    out = as_nobody(script, uid)
    got, control = out["signer"], out["control"]
    assert isinstance(got, dict) and isinstance(control, dict)
    assert got["attach"] == -1 and got["errno"] == 1, got  # EPERM
    assert got["gcore_rc"] != 0 and got["cores"] == [], got
    assert control["attach"] == 0, control
    assert control["gcore_rc"] == 0 and control["cores"], control
    status = out["status"]
    assert isinstance(status, dict)
    assert status["protections"]["ptrace"] == "blocked (PR_SET_DUMPABLE=0)"


def signer_argv(cfg: Path, sock: Path) -> list[str]:
    return [sys.executable, "-m", "tholos.node.signer", "--config", str(cfg), "--socket", str(sock)]


def _core_pattern() -> str:
    return Path("/proc/sys/kernel/core_pattern").read_text().strip()


def test_sigabrt_leaves_no_core_file(tmp_path: Path) -> None:
    cfg, _ = make_node_dir(tmp_path / "node")
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    # the signer asks for no core; give it every chance to write one (RLIMIT_CORE unlimited)
    argv = signer_argv(cfg, run / "s.sock")
    p = subprocess.Popen(
        argv,
        cwd=cwd,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(SRC)},
        preexec_fn=_unlimited_core,
    )
    assert p.stdout is not None
    assert p.stdout.readline().decode().startswith(READY)
    limits = Path(f"/proc/{p.pid}/limits").read_text()
    core_line = next(line for line in limits.splitlines() if line.startswith("Max core file size"))
    assert core_line.split()[4:6] == ["0", "0"], core_line
    p.send_signal(signal.SIGABRT)
    assert p.wait(60) == -signal.SIGABRT
    p.stdout.close()
    assert list(cwd.iterdir()) == []
    # control: an unhardened process in the same conditions leaves a core file here
    pattern = _core_pattern()
    if pattern.startswith("|") or "/" in pattern:
        pytest.skip(f"core_pattern {pattern!r} writes no core into the cwd: no control")
    ctl_cwd = tmp_path / "control"
    ctl_cwd.mkdir()
    q = subprocess.Popen(
        [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGABRT)"],
        cwd=ctl_cwd,
        preexec_fn=_unlimited_core,
    )
    assert q.wait(60) == -signal.SIGABRT
    assert [f.name for f in ctl_cwd.iterdir() if f.name.startswith("core")], "control: no core"


def _unlimited_core() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


def test_status_reports_each_protection_as_the_kernel_sees_it(tmp_path: Path) -> None:
    cfg, _ = make_node_dir(tmp_path / "node")
    client = launch(cfg)
    try:
        assert client.process is not None
        pid = client.process.pid
        status = client.status()
        assert status["pid"] == pid
        prot = status["protections"]
        assert set(prot) == {"core_dumps", "ptrace", "memory_lock", "secret_files"}
        assert prot["core_dumps"] == "off (RLIMIT_CORE=0)"
        assert prot["ptrace"] == "blocked (PR_SET_DUMPABLE=0)"
        assert prot["secret_files"] == "owner only"
        # the kernel's own view of the process agrees with what it reports
        proc = Path(f"/proc/{pid}/status").read_text()
        locked_kb = int(next(x for x in proc.splitlines() if x.startswith("VmLck:")).split()[1])
        if prot["memory_lock"] == "locked (mlockall)":
            assert locked_kb > 0
        else:
            assert prot["memory_lock"].startswith("not locked: ") and locked_kb == 0
        # /proc/PID of a non-dumpable process is owned by root, not by the process's user
        assert Path(f"/proc/{pid}/mem").stat().st_uid == 0
        assert client.protections == prot  # what it printed at start
    finally:
        stop(client)


def test_memory_lock_not_permitted_is_reported(nobody_dir: tuple[Path, int]) -> None:
    """Without CAP_IPC_LOCK and with a bounded RLIMIT_MEMLOCK the signer starts unlocked and
    says so (it does not pretend)."""
    import resource

    if resource.getrlimit(resource.RLIMIT_MEMLOCK)[0] == resource.RLIM_INFINITY:
        pytest.skip("RLIMIT_MEMLOCK is unlimited here: mlockall is permitted to any user")
    d, uid = nobody_dir
    cfg, _ = make_node_dir(d / "node", uid)
    run = d / "node" / "run"
    run.mkdir(mode=0o700)
    os.chown(run, uid, uid)
    script = f"""
    sock = Path({str(run / "s.sock")!r})
    signer = child(lambda: process.main(["--config", {str(cfg)!r}, "--socket", str(sock)]))
    wait_for(sock)
    status = client.SignerClient(sock).status()
    vmlck = [x for x in Path(f"/proc/{{signer}}/status").read_text().splitlines() if x.startswith("VmLck")]
    os.kill(signer, signal.SIGKILL)
    os.waitpid(signer, 0)
    print(json.dumps({{"protections": status["protections"], "vmlck": vmlck[0]}}))
    """
    out = as_nobody(script, uid)
    prot = out["protections"]
    assert isinstance(prot, dict)
    assert str(prot["memory_lock"]).startswith("not locked: no CAP_IPC_LOCK"), prot
    assert str(out["vmlck"]).split()[1] == "0"
    assert prot["ptrace"] == "blocked (PR_SET_DUMPABLE=0)"


@pytest.mark.parametrize("name", ["master.key", "node.db"])
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_refuses_a_secret_file_open_to_others(tmp_path: Path, name: str, mode: int) -> None:
    cfg, _ = make_node_dir(tmp_path / "node")
    (cfg.parent / name).chmod(mode)
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    p = subprocess.run(
        signer_argv(cfg, run / "s.sock"),
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(SRC)},
    )
    assert p.returncode == 2
    assert f"{name} is open to group or others (mode {mode:04o})" in p.stderr
    assert READY not in p.stdout
    assert not (run / "s.sock").exists()
