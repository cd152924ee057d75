"""What an operator deploys with (deploy/): the systemd units pass `systemd-analyze verify` and
its offline security review, their commands are commands of this CLI, and the container image
installs only hash-checked dependencies and runs unprivileged with its data on a volume."""

from __future__ import annotations

import configparser
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
UNITS = {
    "tholos-node@.service": "tholos-node@4.service",
    "tholos-gateway.service": "tholos-gateway.service",
}
TOOL = "/opt/tholos/bin/tholos"  # where the image (and docs/deploy.md) installs the CLI
SYSTEM_UNITS = Path("/usr/lib/systemd/system")


def unit(name: str) -> configparser.ConfigParser:
    # systemd repeats keys (SystemCallFilter=); the last one is enough to read ExecStart
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    cp.read_string((DEPLOY / "systemd" / name).read_text())
    return cp


@pytest.fixture(scope="module")
def analyze_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root for `systemd-analyze --root`: the system's own units, ours, and an executable at
    the path the units start (the image's)."""
    if shutil.which("systemd-analyze") is None or not SYSTEM_UNITS.is_dir():
        pytest.skip("systemd-analyze (apt: systemd) is not installed")
    root = tmp_path_factory.mktemp("root")
    shutil.copytree(SYSTEM_UNITS, root / "usr/lib/systemd/system", symlinks=True)
    etc = root / "etc/systemd/system"
    etc.mkdir(parents=True)
    for src, dest in UNITS.items():
        shutil.copy(DEPLOY / "systemd" / src, etc / src)
        if dest != src:
            shutil.copy(DEPLOY / "systemd" / src, etc / dest)
    tool = root / TOOL.lstrip("/")
    tool.parent.mkdir(parents=True)
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    return root


def analyze(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", *args, f"--root={root}"],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_units_verify(analyze_root: Path) -> None:
    r = analyze(analyze_root, "verify", "--man=no", *UNITS.values())
    assert r.returncode == 0 and r.stderr == "", r.stderr
    # the check sees a mistake: verify complains (on stderr) about a misspelt hardening key
    bad = analyze_root / "etc/systemd/system/tholos-misspelt.service"
    bad.write_text(
        (DEPLOY / "systemd/tholos-gateway.service")
        .read_text()
        .replace("ProtectClock", "ProtectClok")
    )
    r = analyze(analyze_root, "verify", "--man=no", bad.name)
    assert "Unknown key 'ProtectClok'" in r.stderr
    bad.unlink()


@pytest.mark.parametrize("name", sorted(UNITS.values()))
def test_units_exposure(analyze_root: Path, name: str) -> None:
    r = analyze(analyze_root, "security", "--offline=yes", "--no-pager", name)
    assert r.returncode == 0, r.stderr
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", r.stdout)
    assert m is not None, r.stdout[-500:]
    assert float(m.group(1)) <= 2.0, r.stdout  # systemd rates < 2.0 "OK"


def test_hardening_settings() -> None:
    for name in UNITS:
        s = unit(name)["Service"]
        for key, value in {
            "NoNewPrivileges": "yes",
            "ProtectSystem": "strict",
            "PrivateTmp": "yes",
            "LimitCORE": "0",
            "MemoryDenyWriteExecute": "yes",
            "UMask": "0077",
            "User": "tholos",
            "CapabilityBoundingSet": "",
        }.items():
            assert s.get(key) == value, (name, key)


def run_cli(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tholos", *argv], capture_output=True, text=True, timeout=60
    )


def exercise(argv: list[str], missing: Path) -> None:
    """`argv` (a unit's or image's command, its --config pointed at a missing file) is a command
    of this CLI: it gets as far as reading the config, not an argument error."""
    i = argv.index("--config")
    argv = [*argv[: i + 1], str(missing), *argv[i + 2 :]]
    r = run_cli(argv)
    assert r.returncode == 2, (argv, r.stderr)
    assert "usage:" not in r.stderr and str(missing) in r.stderr, (argv, r.stderr)


@pytest.mark.parametrize(
    ("name", "command"), [("tholos-node@.service", "node"), ("tholos-gateway.service", "gateway")]
)
def test_exec_start_is_a_cli_command(name: str, command: str, tmp_path: Path) -> None:
    s = unit(name)["Service"]
    argv = shlex.split(s["ExecStart"].replace("%i", "4"))
    assert argv[0] == TOOL and argv[1] == command
    state = "/var/lib/" + s["StateDirectory"].replace("%i", "4")
    assert s["WorkingDirectory"].replace("%i", "4") == state
    assert argv[argv.index("--config") + 1].startswith(state + "/")
    exercise(argv[1:], tmp_path / "missing.json")


def test_node_unit_passphrase_never_in_the_node_directory() -> None:
    s = unit("tholos-node@.service")["Service"]
    assert s["LoadCredentialEncrypted"].startswith("passphrase:/etc/credstore.encrypted/")
    assert "THOLOS_PASSPHRASE_FILE=%d/passphrase" in s["Environment"].split()


def stages(text: str) -> dict[str, list[tuple[str, str]]]:
    """Containerfile stages: name -> [(instruction, argument)], continuation lines joined."""
    out: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    joined = re.sub(r"\\\n", " ", text)
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        if word.upper() == "FROM":
            m = re.search(r"\bAS\s+(\S+)", rest, re.IGNORECASE)
            current = []
            out[m.group(1) if m else rest] = current
        current.append((word.upper(), rest.strip()))
    return out


def test_containerfile(tmp_path: Path) -> None:
    text = (DEPLOY / "Containerfile").read_text()
    st = stages(text)
    assert {"build", "runtime", "node", "gateway"} <= st.keys()
    repo = DEPLOY.parent
    pip = [arg for ins in st.values() for op, arg in ins if op == "RUN" and "pip install" in arg]
    installs = [c for arg in pip for c in arg.split("&&") if "pip install" in c]
    assert installs, "no pip install"
    for cmd in installs:
        words = shlex.split(cmd)
        if "-r" in words:
            assert "--require-hashes" in words and words[words.index("-r") + 1] == (
                "requirements/lock.txt"
            ), cmd
        else:  # tholos itself: nothing resolved beyond the lock
            assert "--no-deps" in words, cmd
    for ins in st.values():
        for op, arg in ins:
            if op == "COPY" and not arg.startswith("--from"):
                for src in shlex.split(arg)[:-1]:
                    assert (repo / src).exists(), src
    runtime = dict(st["runtime"])
    assert runtime["USER"].split(":")[0] not in ("0", "root")
    assert "PYTHONDONTWRITEBYTECODE=1" in runtime["ENV"]  # a read-only root file system
    import json

    assert json.loads(runtime["ENTRYPOINT"]) == [TOOL]
    for target, command in (("node", "node"), ("gateway", "gateway")):
        ins = dict(st[target])
        volume = json.loads(ins["VOLUME"])[0]
        cmd = json.loads(ins["CMD"])
        assert cmd[0] == command and cmd[cmd.index("--config") + 1].startswith(volume + "/")
        exercise(cmd, tmp_path / f"{target}.json")
