"""Merkle-sum liability trees: every customer's proof verifies against the root and total, and any
change to an amount, a salt, a sibling or the total breaks it (hypothesis over tree shapes)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tholos.reserves.liabilities import (
    InclusionProof,
    LiabilityError,
    Step,
    build_tree,
    build_trees,
    read_csv,
    verify_inclusion,
)

balances = st.lists(
    st.tuples(st.text("abcdefgh0123456789", min_size=1, max_size=8), st.integers(0, 10**20)),
    min_size=1,
    max_size=40,
    unique_by=lambda r: r[0],
)


@settings(max_examples=60, deadline=None)
@given(balances)
def test_every_customer_proof_verifies_and_sums(rows: list[tuple[str, int]]) -> None:
    tree = build_tree("BTC", rows)
    assert tree.total == sum(a for _, a in rows)
    for cid, amount in rows:
        proof = tree.proof(cid)
        assert proof.amount == amount
        verify_inclusion(InclusionProof.from_dict(proof.as_dict()), tree.root, tree.total)


@settings(max_examples=60, deadline=None)
@given(balances, st.data())
def test_any_change_breaks_the_proof(rows: list[tuple[str, int]], data: st.DataObject) -> None:
    tree = build_tree("BTC", rows)
    cid, _ = data.draw(st.sampled_from(rows))
    proof = tree.proof(cid)
    broken = [
        InclusionProof(proof.asset, proof.customer_id, proof.salt, proof.amount + 1, proof.path),
        InclusionProof(proof.asset, proof.customer_id + "x", proof.salt, proof.amount, proof.path),
        InclusionProof(proof.asset, proof.customer_id, bytes(16), proof.amount, proof.path),
    ]
    if proof.path:
        first = proof.path[0]
        broken.append(
            InclusionProof(
                proof.asset,
                proof.customer_id,
                proof.salt,
                proof.amount,
                (Step(first.side, first.hash, first.sum + 1), *proof.path[1:]),
            )
        )
    for bad in broken:
        with pytest.raises(LiabilityError):
            verify_inclusion(bad, tree.root, tree.total)
    with pytest.raises(LiabilityError):
        verify_inclusion(proof, tree.root, tree.total - 1 if tree.total else 1)


def test_csv_and_errors() -> None:
    trees = build_trees(read_csv("customer_id,asset,amount\nann,BTC,5\nbob,BTC,7\nann,ETH,9\n"))
    assert trees["BTC"].total == 12 and trees["ETH"].total == 9
    for bad, text in [
        ("ann,BTC,5\n", "header"),
        ("customer_id,asset,amount\nann,BTC,-5\n", "line 2"),
        ("customer_id,asset,amount\nann,BTC\n", "three fields"),
        ("customer_id,asset,amount\n", "no liabilities"),
    ]:
        with pytest.raises(LiabilityError, match=text):
            read_csv(bad)
    with pytest.raises(LiabilityError, match="twice"):
        build_tree("BTC", [("a", 1), ("a", 2)])
    with pytest.raises(LiabilityError, match="no liability"):
        trees["BTC"].proof("zed")
    with pytest.raises(LiabilityError, match="malformed"):
        InclusionProof.from_dict({"asset": "BTC"})


def test_salts_hide_customers_and_are_reproducible() -> None:
    a = build_tree("BTC", [("ann", 5), ("bob", 7)])
    b = build_tree("BTC", [("ann", 5), ("bob", 7)])
    assert a.root != b.root  # fresh salts: the root says nothing linkable
    salts = {cid: salt for cid, salt, _ in a.leaves}
    assert build_tree("BTC", [("ann", 5), ("bob", 7)], salts).root == a.root
