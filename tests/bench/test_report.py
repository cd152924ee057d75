"""The one-run bench report: an old tree is checked out and removed again, a tree without a newer
flag runs without it, and the old-vs-new table pairs the same lines of both runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tholos.bench import report

FAKE_BENCH = """
import argparse, json
p = argparse.ArgumentParser()
p.add_argument("--json", action="store_true")
p.add_argument("--duration", type=float)
a = p.parse_args()
print(json.dumps({"duration": a.duration, "json": a.json}))
"""


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(cwd), *args], capture_output=True, text=True, check=True
    ).stdout


def test_old_tree_is_a_worktree_removed_afterwards(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "f.txt").write_text("old")
    _git(repo, "add", "f.txt")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "old")
    rev = _git(repo, "rev-parse", "--short", "HEAD").strip()
    (repo / "f.txt").write_text("new, not committed")
    with report.old_tree(repo, rev) as tree:
        assert (tree / "f.txt").read_text() == "old"
        assert report.revision(tree) == rev
        assert len(_git(repo, "worktree", "list").splitlines()) == 2
    assert not tree.exists()
    assert len(_git(repo, "worktree", "list").splitlines()) == 1
    assert report.revision(repo) == rev + "+dirty"


def test_a_tree_without_a_flag_runs_without_it(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "fakebench").mkdir(parents=True)
    (src / "fakebench" / "__main__.py").write_text(FAKE_BENCH)
    assert report.known_flags(src, ["fakebench"]) >= {"--json", "--duration"}
    step = report.run_step(
        "fake",
        src,
        ["fakebench"],
        [("--json", None), ("--wan", None), ("--duration", "0.5")],
        tmp_path,
        timeout=120,
    )
    assert step["dropped_flags"] == ["--wan"]
    assert step["output"] == {"duration": 0.5, "json": True}
    assert "error" not in step and step["argv"][-3:] == ["--json", "--duration", "0.5"]


def test_a_failing_step_is_recorded(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "brokenbench").mkdir(parents=True)
    (src / "brokenbench" / "__main__.py").write_text("raise SystemExit('no cluster here')")
    step = report.run_step("broken", src, ["brokenbench"], [], tmp_path, timeout=120)
    assert step["error"] == "exit status 1 (see broken.log)"
    assert "no cluster here" in (tmp_path / "broken.log").read_text()


def test_current_tree_bench_knows_its_flags() -> None:
    src = Path(report.__file__).resolve().parents[2]
    flags = report.known_flags(src, ["tholos", "bench"])
    assert {"--json", "--wan", "--configs", "--duration"} <= flags


def _row(n: int, scheme: str, mode: str, ops: float, cpu: float) -> dict[str, object]:
    return {
        "n": n,
        "t": 2,
        "scheme": scheme,
        "mode": mode,
        "ops_per_s": ops,
        "p50_ms": 2.0,
        "cpu_us_nodes": cpu,
    }


def test_compare_pairs_the_same_lines() -> None:
    new = {
        "output": {
            "results": [
                _row(4, "bip340", "sign/batch", 3000, 500),
                _row(4, "bls12381", "sign/single", 90, 800),
                {"n": 4, "t": 2, "scheme": "ed25519", "error": "boom"},
            ]
        }
    }
    old = {"output": {"results": [_row(4, "bip340", "sign/batch", 1500, 1000)]}}
    table = report.compare(new, old, "abc1234")
    lines = [ln for ln in table.splitlines() if ln.startswith("| 4 ")]
    assert len(lines) == 2
    bip = next(ln for ln in lines if "bip340" in ln)
    assert "| 3,000 | 1,500 | 2.00× |" in bip and "| 500 | 1,000 | 0.50× |" in bip
    bls = next(ln for ln in lines if "bls12381" in ln)
    assert "| 90 | – | – |" in bls
    assert "abc1234" in table


def test_main_refuses_bad_settings(tmp_path: Path) -> None:
    got = subprocess.run(
        [sys.executable, "-m", "tholos.bench.report", "--out", str(tmp_path), "--keys", "-1"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert got.returncode == 2 and "--keys must be >= 0" in got.stderr
    assert not (tmp_path / "report.json").exists()
