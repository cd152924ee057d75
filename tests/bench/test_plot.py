"""bench/plot.py draws PNGs from bench rows (synthetic rows here; no timing involved)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tholos.bench import plot

pytest.importorskip("matplotlib", reason="matplotlib is in the bench extra")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _row(scheme: str, mode: str, n: int, t: int, ops: float, conc: int = 16) -> dict[str, object]:
    return {
        "n": n,
        "t": t,
        "scheme": scheme,
        "mode": mode,
        "concurrency": conc,
        "ops_per_s": ops,
        "latency_quantiles_ms": [1.0 + i * 0.5 for i in range(21)],
    }


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, path
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_both_charts_are_written_as_png(tmp_path: Path) -> None:
    results = {
        "results": [
            _row("bip340", "sign/batch", 4, 2, 1700.0),
            _row("bip340", "sign/batch", 7, 3, 900.0),
            _row("ecdsa", "sign/prefilled", 4, 2, 500.0),
            _row("bip340", "sign/latency", 4, 2, 200.0, conc=1),
            _row("bip340", "keygen/batch", 4, 2, 400.0),
            {"n": 7, "t": 3, "scheme": "dise", "error": "HTTP 503"},
        ],
        "baselines": {"libsecp256k1 BIP340 sign": 50.0, "libsecp256k1 ECDSA sign": 30.0},
        "wan": {"sites": 3, "inter_site_rtt_ms": 20.0, "intra_site_rtt_ms": 1.0},
    }
    written = plot.write_charts(results, tmp_path / "charts")
    assert [p.name for p in written] == ["wan-throughput.png", "wan-latency.png"]
    for p in written:
        w, h = _png_size(p)
        assert w > 300 and h > 200


def test_rows_without_what_a_chart_needs_give_no_chart(tmp_path: Path) -> None:
    only_keygen = {"results": [_row("bip340", "keygen/batch", 4, 2, 400.0)]}
    assert plot.write_charts(only_keygen, tmp_path) == []
    with pytest.raises(ValueError, match="no signing rows"):
        plot.throughput_chart([], {}, tmp_path / "t.png")
    assert not (tmp_path / "t.png").exists()
