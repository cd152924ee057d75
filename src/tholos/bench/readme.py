"""The README's performance table, written from the rows of one `tholos bench` run.

`markdown(rows, goals)` renders one line per (scheme, operation) with ops/s, p50 and CPU per
operation for every (n, t) measured, beside the published Virtual and Distributed HSM figure where
the paper has one, then the run's goals, each figure beside its target (bench/targets.py); `update(text, table)` puts it between the README's markers; `parse(text)` reads a
markdown table back (the test checks the README's table with it)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tholos.bench import targets

BEGIN = "<!-- bench:begin -->"
END = "<!-- bench:end -->"

# (scheme, operation) -> ops/s of the published Virtual and Distributed HSM, 4 servers
PUBLISHED: dict[tuple[str, str], float] = {
    ("bip340", "keygen/batch"): 48.76,
    ("bip340", "sign/batch"): 46.43,
    ("bls12381", "keygen/single"): 7.69,
    ("bls12381", "sign/single"): 12.23,
    ("dise", "encrypt/1KiB"): 17.7,
}


def _num(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}"


def markdown(
    rows: Iterable[Mapping[str, Any]], goals: Iterable[Mapping[str, Any]] | None = None
) -> str:
    """A markdown table of `rows` (the dicts `tholos bench --json` prints under "results"), and
    with `goals` (its "targets") the table of figures against their targets after it."""
    rows = list(rows)
    good = [  # cluster rows; the per-chain parse+policy rows (n "–", no ops/s) are not
        r for r in rows if "error" not in r and str(r.get("n", "")).isdigit() and "ops_per_s" in r
    ]
    configs = sorted({(int(r["n"]), int(r["t"])) for r in good})
    lines: dict[tuple[str, str], dict[tuple[int, int], Mapping[str, Any]]] = {}
    batch: dict[tuple[str, str], int] = {}
    for r in good:
        key = (str(r["scheme"]), str(r["mode"]))
        lines.setdefault(key, {})[(int(r["n"]), int(r["t"]))] = r
        batch[key] = int(r.get("batch", 1))
    head = ["scheme", "operation", "per request", "published VDHSM, 4 servers, ops/s"]
    for n, t in configs:
        head += [f"n={n} t={t} ops/s", f"n={n} t={t} p50 ms", f"n={n} t={t} CPU µs/op nodes / gw"]
    out = ["| " + " | ".join(head) + " |", "|---|---|---:|" + "---:|" * (len(head) - 3)]
    for key, by_config in lines.items():
        paper = PUBLISHED.get(key)
        cells = [key[0], key[1], str(batch[key]), "" if paper is None else _num(paper)]
        for c in configs:
            got = by_config.get(c)
            if got is None:
                cells += ["", "", ""]
                continue
            r = got
            cpu = (
                f"{r['cpu_us_nodes']:,.0f} / {r['cpu_us_gateway']:,.0f}"
                if "cpu_us_nodes" in r
                else "–"
            )
            cells += [_num(float(r["ops_per_s"])), f"{float(r['p50_ms']):.1f}", cpu]
        out.append("| " + " | ".join(cells) + " |")
    goals = list(goals or [])
    if goals:
        out += [
            "",
            "Goals of this run, each figure beside its target:",
            "",
            targets.markdown(goals),
        ]
        return "\n".join(out)
    return "\n".join(out) + "\n"


def update(text: str, table: str) -> str:
    """`text` with everything between BEGIN and END replaced by `table`; ValueError names a
    missing or misplaced marker (the README is left as it was)."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < 0 or end < start:
        raise ValueError(f"the README needs {BEGIN} ... {END} around its performance table")
    return text[: start + len(BEGIN)] + "\n" + table + text[end:]


def between(text: str) -> str:
    """What lies between the markers."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"no {BEGIN} ... {END} section")
    return text[start + len(BEGIN) : end]


def parse(text: str) -> list[dict[str, str]]:
    """The rows of the first markdown table in `text`, as header -> cell; ValueError if a row
    has a different number of cells than the header, or there is no table."""
    rows: list[str] = []
    for ln in text.splitlines():
        if ln.strip().startswith("|"):
            rows.append(ln.strip())
        elif rows:  # the first table ended
            break
    if len(rows) < 2:
        raise ValueError("no markdown table")

    def cells(line: str) -> list[str]:
        return [c.strip() for c in line.strip("|").split("|")]

    head = cells(rows[0])
    if not all(set(c) <= set("-: ") and "-" in c for c in cells(rows[1])):
        raise ValueError("the second line of the table is not its alignment row")
    out = []
    for ln in rows[2:]:
        c = cells(ln)
        if len(c) != len(head):
            raise ValueError(f"{len(c)} cells, the header has {len(head)}: {ln[:80]}")
        out.append(dict(zip(head, c, strict=True)))
    return out
