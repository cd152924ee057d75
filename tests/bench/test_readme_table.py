"""The README's performance table: written from bench rows (synthetic here, no cluster), put
between the README's markers, and read back."""

from __future__ import annotations

from pathlib import Path

import pytest

from tholos.bench import readme

README = Path(__file__).resolve().parents[2] / "README.md"


def row(n: int, t: int, scheme: str, mode: str, ops: float, **kw: float) -> dict[str, object]:
    return {
        "n": n,
        "t": t,
        "scheme": scheme,
        "mode": mode,
        "batch": kw.pop("batch", 1),
        "concurrency": 16,
        "ops_per_s": ops,
        "p50_ms": 2.5,
        **kw,
    }


ROWS = [
    row(4, 2, "bip340", "sign/batch", 3212.4, batch=128, cpu_us_nodes=664.0, cpu_us_gateway=316.0),
    row(7, 3, "bip340", "sign/batch", 1838.0, batch=128, cpu_us_nodes=900.0, cpu_us_gateway=400.0),
    row(4, 2, "ecdsa", "sign/prefilled", 57.25),
    {"n": 7, "t": 3, "scheme": "ecdsa", "error": "HTTP 503"},
]


def test_table_from_rows() -> None:
    rows = readme.parse(readme.markdown(ROWS))
    assert [(r["scheme"], r["operation"]) for r in rows] == [
        ("bip340", "sign/batch"),
        ("ecdsa", "sign/prefilled"),
    ]
    bip = rows[0]
    assert bip["published VDHSM, 4 servers, ops/s"] == "46.4"  # the paper's figure beside ours
    assert bip["n=4 t=2 ops/s"] == "3,212" and bip["per request"] == "128"
    assert bip["n=4 t=2 CPU µs/op nodes / gw"] == "664 / 316"
    assert bip["n=7 t=3 CPU µs/op nodes / gw"] == "900 / 400" and bip["n=7 t=3 p50 ms"] == "2.5"
    ecdsa = rows[1]
    assert ecdsa["n=4 t=2 ops/s"] == "57.2" and ecdsa["published VDHSM, 4 servers, ops/s"] == ""
    assert list(ecdsa.values())[-3:] == ["", "", ""]  # not measured at (7,3): the run failed


def test_update_replaces_only_between_markers() -> None:
    text = f"intro\n{readme.BEGIN}\nold table\n{readme.END}\nafter\n"
    table = readme.markdown(ROWS)
    new = readme.update(text, table)
    assert new.startswith("intro\n") and new.endswith(f"{readme.END}\nafter\n")
    assert readme.between(new).strip() == table.strip()
    assert readme.update(new, table) == new  # a second run with the same rows changes nothing


@pytest.mark.parametrize("text", ["no markers", f"{readme.END}\n{readme.BEGIN}", readme.BEGIN])
def test_update_refuses_without_markers(text: str) -> None:
    with pytest.raises(ValueError, match="bench:begin"):
        readme.update(text, "| a |\n|---|\n")


def test_parse_refuses_ragged_rows() -> None:
    with pytest.raises(ValueError, match="3 cells, the header has 2"):
        readme.parse("| a | b |\n|---|---|\n| 1 | 2 | 3 |\n")
    with pytest.raises(ValueError, match="no markdown table"):
        readme.parse("just text")


def test_readme_table_parses_with_published_figures() -> None:
    rows = readme.parse(readme.between(README.read_text()))
    assert len(rows) >= 5
    published = [k for k in rows[0] if "published" in k.lower()]
    assert published, "the README's table keeps the published VDHSM column"
    assert sum(1 for r in rows if r[published[0]]) >= 3


def test_chain_policy_rows_are_left_out_of_the_cluster_table() -> None:
    chain_row = {"n": "–", "t": "–", "scheme": "bitcoin", "mode": "node/parse+policy", "us": 270.0}
    assert readme.markdown([*ROWS, chain_row]) == readme.markdown(ROWS)
