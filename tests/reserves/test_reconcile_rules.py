"""Reconciliation's rules as properties (no engine: the engine tests are test_reconcile.py):
a history whose every outgoing transaction has its request balances; dropping any movement,
or any request, is listed; and the proof document's malformed shapes are refused by name."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tholos.reserves.proof import FORMAT, verify
from tholos.reserves.reconcile import Movement, SignedRequest, reconcile

amounts = st.integers(min_value=1, max_value=10**20)


@st.composite
def histories(draw: st.DrawFn) -> tuple[int, list[Movement], list[SignedRequest]]:
    opening = draw(st.integers(min_value=0, max_value=10**21))
    moves: list[Movement] = []
    requests: list[SignedRequest] = []
    for i, kind in enumerate(draw(st.lists(st.sampled_from(["in", "out"]), max_size=8))):
        block, txid = i + 1, f"0x{i:064x}"
        if kind == "in":
            moves.append(Movement(txid, block, "deposit", "ETH", draw(amounts), "0xw", "0xa"))
        else:
            value, fee = draw(amounts), draw(amounts)
            moves += [
                Movement(txid, block, "fee", "ETH", fee, "0xw"),
                Movement(txid, block, "withdrawal", "ETH", value, "0xw", "0xb"),
            ]
            requests.append(SignedRequest(f"r{i}", txid, "ETH", value))
    return opening, moves, requests


def _closing(opening: int, moves: list[Movement]) -> int:
    sign = {"deposit": 1, "withdrawal": -1, "fee": -1}
    return opening + sum(sign[m.kind] * m.amount for m in moves)


@given(histories())
def test_a_complete_history_balances(h: tuple[int, list[Movement], list[SignedRequest]]) -> None:
    opening, moves, requests = h
    r = reconcile("w", "ETH", (0, 100), (opening, _closing(opening, moves)), moves, requests)
    assert r.balances, r.mismatches
    assert all(line["request_id"] for line in r.lines if line["kind"] != "deposit")


@given(histories(), st.data())
def test_anything_missing_is_listed(
    h: tuple[int, list[Movement], list[SignedRequest]], data: st.DataObject
) -> None:
    opening, moves, requests = h
    closing = _closing(opening, moves)
    if moves:  # a movement the history did not see: the balance is unexplained
        dropped = data.draw(st.integers(0, len(moves) - 1))
        seen = moves[:dropped] + moves[dropped + 1 :]
        r = reconcile("w", "ETH", (0, 100), (opening, closing), seen, requests)
        assert "unexplained_balance" in {m.kind for m in r.mismatches}
    if requests:  # a transaction whose request is unknown: an unrequested movement
        dropped = data.draw(st.integers(0, len(requests) - 1))
        known = requests[:dropped] + requests[dropped + 1 :]
        r = reconcile("w", "ETH", (0, 100), (opening, closing), moves, known)
        assert [m.txid for m in r.mismatches] == [requests[dropped].txid]
        assert r.mismatches[0].kind == "unrequested_movement"


def test_movements_outside_the_period_or_asset_are_not_lines() -> None:
    moves = [
        Movement("0x1", 5, "deposit", "ETH", 1, "0xw"),  # at the opening height: before
        Movement("0x2", 6, "deposit", "erc20:0xt", 1, "0xw"),
        Movement("0x3", 11, "deposit", "ETH", 1, "0xw"),  # after the closing height
    ]
    r = reconcile("w", "ETH", (5, 10), (7, 7), moves, [])
    assert r.lines == [] and r.balances


def test_malformed_proof_documents_are_refused_by_name() -> None:
    assert verify({"format": "x"}).errors == [f"format is not {FORMAT}"]
    assert "non-empty list of addresses" in verify({"format": FORMAT, "challenge": "c"}).errors[0]
    entry = {"chain": "ethereum", "network": "1", "address": "0x" + "11" * 20}
    doc = {"format": FORMAT, "challenge": "c", "addresses": [entry, "x"], "reserves": {}}
    errors = verify(doc).errors
    assert errors[0].startswith("addresses[0]: signature missing")
    assert errors[1] == "addresses[1]: not an object"
    assert "liabilities missing" in errors
