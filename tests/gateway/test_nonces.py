"""Ethereum nonces from the gateway store: consecutive under concurrency (threads, each with its
own connection to one database file, as several gateways on one store), kept across restarts,
given back only when a request ends without a signature, and refused (409, nothing changed) when
another request holds them."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tholos.gateway.errors import GatewayError
from tholos.gateway.nonces import GRACE, NonceBook
from tholos.gateway.store import GatewayStore

ADDR = "0x3535353535353535353535353535353535353535"
OTHER = "0x000000000000000000000000000000000000dEaD"


def _end(book: NonceBook, rid: str, status: str, asked: bool = False) -> None:
    with book.db:
        NonceBook.request_ended(book.db, rid, status, asked)


def test_concurrent_allocations_on_several_connections_are_consecutive(tmp_path: Path) -> None:
    db = tmp_path / "gw.db"
    GatewayStore(db).close()  # the schema, once
    got: list[int] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker(w: int) -> None:
        store = GatewayStore(db)
        try:
            for k in range(15):
                a = store.nonces.allocate(31337, ADDR, f"w{w}-{k}", floor=5)
                with lock:
                    got.append(a.nonce)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert sorted(got) == list(range(5, 5 + 120))


def test_allocations_survive_a_restart_and_are_per_chain_and_address(tmp_path: Path) -> None:
    store = GatewayStore(tmp_path / "gw.db")
    assert [store.nonces.allocate(1, ADDR, f"r{i}").nonce for i in range(3)] == [0, 1, 2]
    assert store.nonces.allocate(1, OTHER, "o0").nonce == 0
    assert store.nonces.allocate(5, ADDR, "c0").nonce == 0
    store.close()
    store = GatewayStore(tmp_path / "gw.db")
    assert store.nonces.allocate(1, ADDR, "r3").nonce == 3
    assert store.nonces.allocate(1, ADDR, "r1").nonce == 1  # the same request: the same nonce
    assert store.nonces.allocate(1, ADDR.upper().replace("0X", "0x"), "r4").nonce == 4
    store.close()


def test_a_nonce_comes_back_only_when_its_request_ends_without_a_signature(
    tmp_path: Path,
) -> None:
    book = GatewayStore(tmp_path / "gw.db").nonces
    for i in range(6):
        book.allocate(1, ADDR, f"r{i}")
    _end(book, "r0", "signed")
    _end(book, "r1", "refused")
    _end(book, "r2", "failed", asked=True)  # shares may have been released: kept
    _end(book, "r3", "failed", asked=False)  # no signer asked: given back
    _end(book, "r4", "awaiting-approval")  # still open: kept
    _end(book, "r5", "cancelled")
    _end(book, "r0", "refused")  # a signed nonce is never given back
    assert [book.allocate(1, ADDR, f"n{i}").nonce for i in range(4)] == [1, 3, 5, 6]
    assert book.get("r0") is not None and book.get("r0").state == "signed"  # type: ignore[union-attr]


def test_an_allocation_whose_request_never_came_is_freed_after_its_expiry(tmp_path: Path) -> None:
    book = GatewayStore(tmp_path / "gw.db").nonces
    a = book.allocate(1, ADDR, "lost", seconds=10, now=1000.0)
    assert book.allocate(1, ADDR, "next", now=1000.0 + 10 + GRACE - 1).nonce == a.nonce + 1
    assert book.allocate(1, ADDR, "late", now=1000.0 + 10 + GRACE + 1).nonce == a.nonce
    assert book.get("lost") is None


def test_a_request_claims_a_free_nonce_and_is_refused_one_held_by_another(tmp_path: Path) -> None:
    book = GatewayStore(tmp_path / "gw.db").nonces
    book.allocate(1, ADDR, "a")  # 0
    assert book.claim(1, ADDR, 7, "b", 2e9).nonce == 7
    with pytest.raises(GatewayError) as held:
        book.claim(1, ADDR, 0, "c", 2e9)
    assert held.value.status == 409 and "held by request a" in held.value.args[0]
    with pytest.raises(GatewayError) as other:
        book.claim(1, ADDR, 3, "a", 2e9)
    assert other.value.status == 409 and "allocated 0" in other.value.args[0]
    assert book.get("c") is None
    assert [x.nonce for x in book.held(1, ADDR)] == [0, 7]
    assert book.allocate(1, ADDR, "d").nonce == 1  # the gap below 7 is filled first


@pytest.mark.parametrize(
    ("chain_id", "address", "field"),
    [
        ("0", ADDR, "chain_id"),
        ("x1", ADDR, "chain_id"),
        (1, "0x35", "address"),
        (1, "3535353535353535353535353535353535353535zz", "address"),
    ],
)
def test_bad_input_is_refused_naming_the_field_and_nothing_changes(
    tmp_path: Path, chain_id: object, address: str, field: str
) -> None:
    book = GatewayStore(tmp_path / "gw.db").nonces
    with pytest.raises(GatewayError) as bad:
        book.allocate(chain_id, address, "r")  # type: ignore[arg-type]
    assert bad.value.status == 422 and bad.value.args[0].startswith(field)
    assert book.db.execute("SELECT COUNT(*) FROM eth_nonces").fetchone()[0] == 0


OPS = st.lists(
    st.tuples(st.sampled_from(["allocate", "signed", "refused", "expired"]), st.integers(0, 30)),
    max_size=40,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=OPS)
def test_each_allocation_is_the_lowest_nonce_nobody_holds(tmp_path: Path, ops: list) -> None:  # type: ignore[type-arg]
    store = GatewayStore(tmp_path / f"h{abs(hash(tuple(ops)))}.db")
    book = store.nonces
    held: dict[str, int] = {}
    signed: set[str] = set()
    fresh = 0
    for op, k in ops:
        if op == "allocate":
            rid = f"r{fresh}"
            fresh += 1
            expect = min(set(range(len(held) + 1)) - set(held.values()))
            assert book.allocate(1, ADDR, rid).nonce == expect
            held[rid] = expect
        elif held:
            rid = sorted(held)[k % len(held)]
            _end(book, rid, op)
            if op == "signed":
                signed.add(rid)
            elif rid not in signed:
                del held[rid]
    assert {a.request_id: a.nonce for a in book.held(1, ADDR)} == held
    store.close()
