"""PNG charts of a `tholos bench` run (`--plot DIR`), drawn with matplotlib (the `bench` extra).

- throughput.png (wan-throughput.png for a `--wan` run): ops/s of every signing line per scheme, one bar per (n, t), beside the
  single-key baseline of that scheme's signature (one process, no threshold: bench/micro.py),
  on a log scale (the baselines are 10-100x higher);
- latency.png (wan-latency.png): the latency distribution (CDF from the recorded quantiles) of every one-in-flight
  line; titled with the WAN profile when the run had one (`--wan`).

Input is the JSON `tholos bench --json` prints ({"results": [...], "baselines": {...}, "wan"});
rows without the fields a chart needs are left out of it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

# The single-key signature each scheme is compared with (names from bench.micro.baselines).
BASELINE_OF = {
    "bip340": "libsecp256k1 BIP340 sign",
    "secp256k1": "libsecp256k1 BIP340 sign",
    "ecdsa": "libsecp256k1 ECDSA sign",
    "ed25519": "libsodium Ed25519 sign",
}


def cpu_baselines(iterations: int = 2000) -> dict[str, float]:
    """CPU µs (process time, so the machine's other load barely moves it) of each single-key
    operation of bench.micro.baselines: its ops/s on one core is 1e6 / µs."""
    import time

    from tholos.bench import micro

    return dict(micro.baselines(iterations, clock=time.process_time))


def _sign_rows(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [
        r
        for r in rows
        if "error" not in r
        and str(r.get("mode", "")).startswith("sign/")
        and not str(r["mode"]).endswith("/latency")
        and "ops_per_s" in r
    ]


def throughput_chart(
    rows: Sequence[Mapping[str, Any]],
    baselines: Mapping[str, float],
    path: Path,
    load_average: Sequence[float] | None = None,
) -> Path:
    """Grouped bars: x = scheme and operation, one bar per (n, t), then the baseline bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    load = f"\n(load average {load_average[0]:.1f} at the end of the run)" if load_average else ""
    sign = _sign_rows(rows)
    if not sign:
        raise ValueError("no signing rows with ops/s to plot")
    labels = sorted({(str(r["scheme"]), str(r["mode"])) for r in sign})
    configs = sorted({(int(r["n"]), int(r["t"])) for r in sign})
    series: list[tuple[str, list[float]]] = []
    for n, t in configs:
        by = {
            (r["scheme"], r["mode"]): float(r["ops_per_s"])
            for r in sign
            if (r["n"], r["t"]) == (n, t)
        }
        series.append((f"n={n} t={t}", [by.get(lab, 0.0) for lab in labels]))
    base = [
        1e6 / baselines[BASELINE_OF[s]] if BASELINE_OF.get(s) in baselines else 0.0
        for s, _ in labels
    ]
    if any(base):
        series.append(("single key, one core (CPU time)", base))
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(labels)), 4.5))
    for k, (name, values) in enumerate(series):
        xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(labels))]
        ax.bar(xs, [v if v > 0 else float("nan") for v in values], width, label=name)
    ax.set_xticks(range(len(labels)), [f"{s}\n{m}" for s, m in labels], fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("signatures per second (log)")
    ax.set_title(
        "Signing throughput per scheme and (n, t), every process on one 2-core VM" + load,
        fontsize=10,
    )
    ax.legend(fontsize=8)
    ax.grid(axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def latency_chart(
    rows: Sequence[Mapping[str, Any]],
    wan: Mapping[str, Any] | None,
    path: Path,
    load_average: Sequence[float] | None = None,
) -> Path:
    """CDF of request latency of each one-in-flight line, from its recorded quantiles."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = [
        r
        for r in rows
        if "error" not in r
        and r.get("concurrency") == 1
        and r.get("batch", 1) == 1
        and r.get("latency_quantiles_ms")
    ]
    if not lines:
        raise ValueError("no one-in-flight rows with latency quantiles to plot")
    fig, ax = plt.subplots(figsize=(7.0, 4.5))
    for r in lines:
        qs = [float(x) for x in r["latency_quantiles_ms"]]
        ps = [i / (len(qs) - 1) for i in range(len(qs))]
        ax.plot(qs, ps, marker=".", label=f"{r['scheme']} {r['mode']} (n={r['n']} t={r['t']})")
    ax.set_xscale("log")
    ax.set_xlabel("latency per request, ms (log)")
    ax.set_ylabel("fraction of requests")
    where = "WAN profile: " + _wan_words(wan) if wan else "loopback, no WAN profile"
    load = f"\nload average {load_average[0]:.1f} at the end of the run" if load_average else ""
    ax.set_title(f"Latency, one request in flight ({where}){load}", fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _wan_words(wan: Mapping[str, Any]) -> str:
    """e.g. "3 sites, 20 ms RTT between, 1 ms inside" from WanLinks.describe()."""
    try:
        return (
            f"{wan['sites']} sites, {wan['inter_site_rtt_ms']:g} ms RTT between, "
            f"{wan['intra_site_rtt_ms']:g} ms inside"
        )
    except (KeyError, TypeError, ValueError):
        return "on"


def write_charts(results: Mapping[str, Any], out_dir: Path) -> list[Path]:
    """Every chart the results allow, as PNGs in `out_dir`; the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = list(results.get("results", []))
    prefix = "wan-" if results.get("wan") else ""  # a --wan run does not overwrite the LAN charts
    written = []
    with contextlib.suppress(ValueError):
        written.append(
            throughput_chart(
                rows,
                results.get("baselines", {}),
                out_dir / f"{prefix}throughput.png",
                results.get("load_average"),
            )
        )
    with contextlib.suppress(ValueError):
        written.append(
            latency_chart(
                rows,
                results.get("wan"),
                out_dir / f"{prefix}latency.png",
                results.get("load_average"),
            )
        )
    return written
