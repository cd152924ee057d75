"""`python -m tholos.bench.report`: every benchmark of the README from one run, old tree beside.

In one go, on the current tree: `tholos bench` (each --configs, every scheme) and `tholos bench
--wan`, the scale bench (`--keys` in the big cluster), and the single-process micro baselines;
then the same cluster bench on an old tree (`--old-tree REV`, checked out with `git worktree add`
in a temporary directory and run with that tree's own code first on PYTHONPATH, in the same
Python environment). An old tree that lacks a newer flag is run without it (its `--help` says
which flags it has). Everything goes into one JSON (`DIR/report.json`), the old-vs-new table into
`DIR/old-vs-new.md` and onto standard output; `--update-readme` rewrites the README's table and
`--plot` the charts from this run's figures. Each step's standard error is kept in DIR/*.log.

Every step is a subprocess: a crash or a missing flag in one is recorded in the JSON and the
rest still runs. The figures are only as good as the machine is quiet: run it on an idle one.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

DEFAULT_OLD_TREE = "965f811"
ALL_SCHEMES = "bip340,ed25519,secp256k1,ecdsa,bls12381,dise"  # FROST and the round-signed ones
Flags = list[tuple[str, str | None]]  # (--flag, its value or None for a switch)


def repo_root() -> Path:
    """The git work tree this module's source lives in."""
    here = Path(__file__).resolve().parent
    out = subprocess.run(
        ["git", "-C", str(here), "rev-parse", "--show-toplevel"],
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(out.stdout.strip())


def revision(tree: Path) -> str:
    """The commit checked out at `tree`, with "+dirty" when it has uncommitted changes."""
    rev = subprocess.run(
        ["git", "-C", str(tree), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(tree), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return rev + ("+dirty" if dirty else "")


@contextlib.contextmanager
def old_tree(root: Path, rev: str) -> Iterator[Path]:
    """A detached `git worktree` of `rev` in a temporary directory, removed afterwards."""
    tmp = Path(tempfile.mkdtemp(prefix="tholos-old-tree-"))
    path = tmp / "tree"
    subprocess.run(
        ["git", "-C", str(root), "worktree", "add", "--detach", str(path), rev],
        capture_output=True,
        text=True,
        check=True,
    )
    try:
        yield path
    finally:
        subprocess.run(
            ["git", "-C", str(root), "worktree", "remove", "--force", str(path)],
            capture_output=True,
            check=False,
        )
        subprocess.run(["git", "-C", str(root), "worktree", "prune"], check=False)
        with contextlib.suppress(OSError):
            tmp.rmdir()


def _env(src: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(src) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def known_flags(src: Path, module: Sequence[str]) -> set[str]:
    """The long options `python -m MODULE --help` lists when run with the code at `src`."""
    got = subprocess.run(
        [sys.executable, "-m", *module, "--help"],
        capture_output=True,
        text=True,
        env=_env(src),
        timeout=120,
        check=False,
    )
    return set(re.findall(r"(--[a-z][a-z0-9-]*)", got.stdout))


def supported(flags: Flags, known: set[str]) -> tuple[Flags, list[str]]:
    """`flags` without those the tree does not know; and the names of those left out."""
    kept = [(f, v) for f, v in flags if f in known]
    return kept, [f for f, _ in flags if f not in known]


def argv(flags: Flags) -> list[str]:
    return [x for f, v in flags for x in ((f,) if v is None else (f, v))]


def run_step(
    name: str,
    src: Path,
    module: Sequence[str],
    flags: Flags,
    out_dir: Path,
    timeout: float,
    json_from_stdout: bool = True,
    positional: Sequence[str] = (),
) -> dict[str, Any]:
    """Run `python -m MODULE FLAGS POSITIONAL` with the code at `src` first on the path; its result:
    {"seconds", "argv", "dropped_flags", and "output" (parsed JSON) or "text" or "error"}."""
    # a module without options (bench.micro) is not asked for its --help: it would run
    kept, dropped = supported(flags, known_flags(src, module)) if flags else ([], [])
    cmd = [sys.executable, "-m", *module, *argv(kept), *positional]
    print(f"report: {name}: {' '.join(cmd[2:])}", file=sys.stderr, flush=True)
    log = out_dir / f"{name}.log"
    t0 = time.perf_counter()
    result: dict[str, Any] = {"argv": cmd[2:], "dropped_flags": dropped}
    with tempfile.TemporaryDirectory(prefix="tholos-report-") as cwd, log.open("w") as err:
        try:
            got = subprocess.run(
                cmd,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                env=_env(src),
                cwd=cwd,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            result["error"] = f"timed out after {timeout:.0f} s (see {log.name})"
            got = None
    result["seconds"] = time.perf_counter() - t0
    if got is not None:
        if got.returncode != 0:
            result["error"] = f"exit status {got.returncode} (see {log.name})"
        if json_from_stdout:
            try:
                result["output"] = json.loads(got.stdout)
            except ValueError:
                result["text"] = got.stdout
        else:
            result["text"] = got.stdout
    print(f"report: {name}: {result['seconds']:.0f} s", file=sys.stderr, flush=True)
    return result


# -- the figures compared --------------------------------------------------------------------------
def _rows(step: Mapping[str, Any]) -> dict[tuple[int, int, str, str], Mapping[str, Any]]:
    """(n, t, scheme, mode) -> row of a `tholos bench --json` step (cluster rows only)."""
    out = {}
    for r in (step.get("output") or {}).get("results", []):
        if "error" in r or not str(r.get("n", "")).isdigit() or "ops_per_s" not in r:
            continue
        out[(int(r["n"]), int(r["t"]), str(r["scheme"]), str(r["mode"]))] = r
    return out


def _cell(x: Any, fmt: str) -> str:
    return "–" if x is None else format(float(x), fmt)


def _ratio(new: Any, old: Any) -> str:
    if new is None or old is None or float(old) == 0:
        return "–"
    return f"{float(new) / float(old):.2f}×"


def compare(new: Mapping[str, Any], old: Mapping[str, Any], old_rev: str) -> str:
    """Markdown: each (n, t, scheme, operation) of the new run beside the old tree's figures."""
    a, b = _rows(new), _rows(old)
    head = (
        "| n | t | scheme | operation | ops/s new | ops/s old | new/old | p50 ms new | p50 ms old "
        "| CPU µs/op nodes new | CPU µs/op nodes old | new/old |"
    )
    lines = [
        f"Old tree {old_rev} beside the current tree, the same run (cluster bench, LAN):",
        "",
        head,
        "|---|---|---|---|" + "---:|" * 8,
    ]
    for key in sorted(set(a) | set(b)):
        r, o = a.get(key, {}), b.get(key, {})
        n, t, scheme, mode = key
        lines.append(
            f"| {n} | {t} | {scheme} | {mode} | {_cell(r.get('ops_per_s'), ',.0f')} | "
            f"{_cell(o.get('ops_per_s'), ',.0f')} | {_ratio(r.get('ops_per_s'), o.get('ops_per_s'))} | "
            f"{_cell(r.get('p50_ms'), '.1f')} | {_cell(o.get('p50_ms'), '.1f')} | "
            f"{_cell(r.get('cpu_us_nodes'), ',.0f')} | {_cell(o.get('cpu_us_nodes'), ',.0f')} | "
            f"{_ratio(r.get('cpu_us_nodes'), o.get('cpu_us_nodes'))} |"
        )
    return "\n".join(lines) + "\n"


def scale_summary(step: Mapping[str, Any]) -> str:
    """One line of the scale bench: p50 and CPU of both clusters, start-up and memory."""
    out = step.get("output") or {}
    if "p50_ratio_big_over_small" not in out:
        return f"scale: no result ({step.get('error', 'no output')})"
    s, b = out["small"], out["big"]
    rss = max(  # a node with its signer process
        v + b["rss_kib_after_sign"].get(f"{k}-signer", 0)
        for k, v in b["rss_kib_after_sign"].items()
        if k.startswith("node") and not k.endswith("signer")
    )
    return (
        f"scale: {b['keys']:,} keys sign p50 {b['sign']['p50_ms']:.1f} ms vs "
        f"{s['keys']:,} keys {s['sign']['p50_ms']:.1f} ms (×{out['p50_ratio_big_over_small']:.3f}, "
        f"target ≤ 1.10); node CPU µs/sig {b['sign'].get('cpu_us_per_node', float('nan')):.0f} "
        f"vs {s['sign'].get('cpu_us_per_node', float('nan')):.0f}; start-up "
        f"{b['startup_s']:.1f} s; node RSS {rss / 1024:.0f} MiB"
    )


# -- the run ---------------------------------------------------------------------------------------
def cluster_flags(args: argparse.Namespace) -> Flags:
    flags: Flags = [
        ("--json", None),
        ("--configs", args.configs),
        ("--duration", str(args.duration)),
    ]
    if args.schemes:
        flags.append(("--schemes", args.schemes))
    return flags


def run(args: argparse.Namespace) -> dict[str, Any]:
    root = repo_root()
    src = root / "src"
    out_dir: Path = args.out
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    report: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_average_start": os.getloadavg(),
        "cpus": os.cpu_count(),
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "current": {"revision": revision(root)},
    }
    cur = report["current"]
    cur["bench"] = run_step(
        "bench", src, ["tholos", "bench"], cluster_flags(args), out_dir, args.step_timeout
    )
    if args.wan:
        cur["wan"] = run_step(
            "bench-wan",
            src,
            ["tholos", "bench"],
            [*cluster_flags(args), ("--wan", None)],
            out_dir,
            args.step_timeout,
        )
    if args.keys > 0:
        scale_json = out_dir / "scale.json"
        cur["scale"] = run_step(
            "scale",
            src,
            ["tholos.bench.scale"],
            [
                ("--keys", str(args.keys)),
                ("--signs", str(args.signs)),
                ("--config", args.scale_config),
            ],
            out_dir,
            args.step_timeout,
        )
        if "output" in cur["scale"]:
            scale_json.write_text(json.dumps(cur["scale"]["output"], indent=1))
    if args.micro > 0:
        cur["micro"] = run_step(
            "micro",
            src,
            ["tholos.bench.micro"],
            [],
            out_dir,
            args.step_timeout,
            json_from_stdout=False,
            positional=[str(args.micro)],  # bench.micro's iterations
        )
    if args.old_tree:
        with old_tree(root, args.old_tree) as tree:
            report["old"] = {"revision": revision(tree), "requested": args.old_tree}
            report["old"]["bench"] = run_step(
                "old-bench",
                tree / "src",
                ["tholos", "bench"],
                cluster_flags(args),
                out_dir,
                args.step_timeout,
            )
    report["seconds"] = time.perf_counter() - t0
    report["load_average_end"] = os.getloadavg()
    (out_dir / "report.json").write_text(json.dumps(report, indent=1))
    return report


def publish(report: Mapping[str, Any], args: argparse.Namespace) -> list[str]:
    """README table and charts from the current tree's figures; the lines to print."""
    from tholos.bench import readme

    said = []
    bench = report["current"]["bench"].get("output")
    if args.update_readme is not None:
        if bench and bench.get("results"):
            table = readme.markdown(bench["results"])
            args.update_readme.write_text(readme.update(args.update_readme.read_text(), table))
            said.append(f"report: rewrote the table in {args.update_readme}")
        else:
            said.append("report: no cluster figures: the README is left as it was")
    if args.plot is not None:
        from tholos.bench import plot

        for step in ("bench", "wan"):
            got = (report["current"].get(step) or {}).get("output")
            if got:
                said += [f"report: wrote {p}" for p in plot.write_charts(got, args.plot)]
    return said


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=Path("bench-report"), help="directory of results")
    p.add_argument(
        "--old-tree",
        default=DEFAULT_OLD_TREE,
        metavar="REV",
        help=f"git revision run beside the current tree (default {DEFAULT_OLD_TREE}; '' for none)",
    )
    p.add_argument("--configs", default="4:2,7:3", help="n:t of the cluster benches")
    p.add_argument("--schemes", default=ALL_SCHEMES, help=f"tholos bench --schemes ({ALL_SCHEMES})")
    p.add_argument(
        "--duration", type=float, default=2.0, help="seconds per measured line (default 2)"
    )
    p.add_argument("--no-wan", dest="wan", action="store_false", help="skip tholos bench --wan")
    p.add_argument(
        "--keys", type=int, default=100_000, help="keys of the scale bench's big cluster (0: skip)"
    )
    p.add_argument("--signs", type=int, default=300, help="signatures per scale cluster")
    p.add_argument("--scale-config", default="4:2", help="n:t of the scale clusters")
    p.add_argument(
        "--micro", type=int, default=300, help="iterations of bench.micro (0: skip the baselines)"
    )
    p.add_argument("--update-readme", type=Path, default=None, metavar="README")
    p.add_argument("--plot", type=Path, default=None, metavar="DIR", help="write the charts here")
    p.add_argument(
        "--step-timeout", type=float, default=3600, help="seconds before a step is stopped"
    )


def main(argv_: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tholos.bench.report", description=__doc__)
    add_arguments(p)
    args = p.parse_args(argv_)
    if args.keys < 0 or args.duration <= 0 or args.signs < 1:
        p.error("--keys must be >= 0, --duration > 0 and --signs >= 1")
    report = run(args)
    for line in publish(report, args):
        print(line, file=sys.stderr)
    if "old" in report:
        table = compare(
            report["current"]["bench"], report["old"]["bench"], report["old"]["revision"]
        )
        (args.out / "old-vs-new.md").write_text(table)
        print(table)
    if "scale" in report["current"]:
        print(scale_summary(report["current"]["scale"]))
    failed = [
        f"{side}/{name}: {step['error']}"
        for side in ("current", "old")
        for name, step in (report.get(side) or {}).items()
        if isinstance(step, dict) and "error" in step
    ]
    for f in failed:
        print(f"report: {f}", file=sys.stderr)
    print(f"report: {report['seconds']:.0f} s in all; {args.out / 'report.json'}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
