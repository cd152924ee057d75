"""Exports of the ECDSA, BLS and DiSE packages; their micro-benchmarks (tholos.bench, smoke: one
iteration)."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from tholos.bench import bls_micro, dise_micro, ecdsa_micro
from tholos.crypto import bls, dise, ecdsa


@pytest.mark.parametrize("module", [bls, ecdsa, dise])
def test_all_exports_exist(module: Any) -> None:
    names = module.__all__
    assert len(set(names)) == len(names)
    for name in names:
        assert hasattr(module, name), name


def test_bls_group_module_registers() -> None:
    mod = importlib.import_module("tholos.crypto.groups.bls12381")
    from tholos.crypto.keys import group_by_name

    assert group_by_name("bls12_381_g1") is mod.BLS12_381_G1


@pytest.mark.parametrize(
    "bench",
    [
        lambda: bls_micro.bench_bls(1),
        lambda: ecdsa_micro.bench_ecdsa(1),
        lambda: dise_micro.bench_dise(1),
    ],
)
def test_bench_functions(bench: object) -> None:
    result = bench()  # type: ignore[operator]
    assert [(c["t"], c["n"]) for c in result["cases"]] == [(2, 4), (3, 7)]
    for case in result["cases"]:
        assert all(v > 0 for k, v in case.items() if k not in ("t", "n"))
