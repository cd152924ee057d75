"""The gateway's stores on both backends, the same cases: SQLite (a file) and a real PostgreSQL
server (tests/postgres.py). Two stores on one database stand for two gateways sharing it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tholos.gateway.database import PostgresDatabase, StoreUnavailable, open_database, to_pyformat
from tholos.gateway.idempotency import IdempotencyStore
from tholos.gateway.schema import MIGRATIONS, migrate
from tholos.gateway.signing_claims import SigningClaims
from tholos.gateway.store import GatewayStore, KeyFilter, KeyRow
from tholos.gateway.vault_keys import TransitStore
from tholos.gateway.vault_tokens import TokenStore
from tholos.gateway.wallet_store import WalletRow


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a database lives: a SQLite file, or a fresh database on the PostgreSQL server."""
    if request.param == "sqlite":
        return str(tmp_path / "gateway.db")
    server = request.getfixturevalue("postgres_server")
    return str(server.new_database())


@pytest.fixture
def two(location: str) -> Iterator[tuple[GatewayStore, GatewayStore]]:
    """Two gateways' stores on one database."""
    a, b = GatewayStore(location), GatewayStore(location)
    yield a, b
    a.close()
    b.close()


def _key(key_id: str, created: float, label: str | None = None) -> KeyRow:
    package = {"threshold": 2, "verifying_shares": {"1": "aa", "2": "bb", "3": "cc"}}
    return KeyRow(key_id, "ed25519", label, "ab" * 32, package, {"tags": ["x"]}, created)


def test_migrations_run_once_and_record_their_versions(location: str) -> None:
    db = open_database(location)
    try:
        assert migrate(db) == [v for v, _, _ in MIGRATIONS]
        assert migrate(db) == []
        rows = db.execute("SELECT version, name FROM schema_migrations ORDER BY version").rows
        assert [(int(v), str(n)) for v, n in rows] == [(v, n) for v, n, _ in MIGRATIONS]
        db.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", (999, "from the future", 0.0))
        with pytest.raises(RuntimeError, match="schema version 999"):
            migrate(db)
    finally:
        db.close()


def test_keys_round_trip_and_are_seen_by_the_other_gateway(
    two: tuple[GatewayStore, GatewayStore],
) -> None:
    a, b = two
    now = time.time()
    a.put_keys([_key("k1", now, "one"), _key("k2", now + 1)])
    got = b.get_key("k1")
    assert got == _key("k1", now, "one")  # the timestamp keeps every bit (8-byte floats)
    a.put_keys([_key("k1", now, "renamed")])
    # A shared database (PostgreSQL) is not cached: the other gateway sees the change at once.
    # One SQLite file belongs to one gateway, which caches key rows.
    row = (b if b.db.shared else a).get_key("k1")
    assert row is not None and row.label == "renamed"
    page = b.page_keys(10, 0, KeyFilter(label="renamed"))
    assert page.total == 1 and [r.key_id for r in page.rows] == ["k1"]
    assert b.count_keys() == 2
    assert [r.key_id for r in b.page_keys(1, 1).rows] == ["k2"]
    a.delete_key("k2")
    assert b.get_key("k2") is None and b.count_keys() == 1
    with pytest.raises(ValueError, match="limit"):
        b.page_keys(0)


def test_requests_and_wallets(two: tuple[GatewayStore, GatewayStore]) -> None:
    a, b = two
    a.record_requests([("r1", "frost", "k1", "done", {"signature": "00"})])
    a.record_requests([("r1", "frost", "k1", "failed", {"error": "x"})])
    got = b.get_request("r1")
    assert got is not None and got["status"] == "failed" and got["detail"] == {"error": "x"}
    assert b.get_request("r2") is None
    w = WalletRow("w1", "k1", "bitcoin", "regtest", "p2tr", time.time(), None)
    a.wallets.put(w)
    assert b.wallets.get("w1") == w
    assert b.wallets.page(10, chain="bitcoin").total == 1
    assert b.wallets.page(10, chain="ethereum").rows == []
    assert b.wallets.count() == 1


def test_idempotency_holds_across_gateways(two: tuple[GatewayStore, GatewayStore]) -> None:
    a, b = (IdempotencyStore(s.db) for s in two)
    assert a.begin("alice", "k-1", "h1") == ("new", None)
    assert b.begin("alice", "k-1", "h1") == ("running", None)
    assert b.begin("alice", "k-1", "h2") == ("reused", None)
    assert b.begin("bob", "k-1", "h1") == ("new", None)  # keys are per API client
    body = b'{"signature": "\x00\xff"}'
    a.finish("alice", "k-1", 201, body)
    assert b.begin("alice", "k-1", "h1") == ("replay", (201, body))
    b.finish("bob", "k-1", None, b"")  # a 5xx: forgotten, the retry runs
    assert a.begin("bob", "k-1", "h1") == ("new", None)


def test_tokens_and_transit_keys_across_gateways(two: tuple[GatewayStore, GatewayStore]) -> None:
    ta, tb = TokenStore(two[0].db), TokenStore(two[1].db)
    token, info = ta.create("alice", 60)
    assert tb.lookup(token) == info
    assert [t.accessor for t in tb.list()] == [info.accessor]
    assert tb.revoke(info.accessor) and ta.lookup(token) is None
    assert not ta.revoke(info.accessor)
    ka, kb = TransitStore(two[0].db), TransitStore(two[1].db)
    first = ka.create("payments", "ed25519", "k1")
    again = kb.create("payments", "ed25519", "k9")  # a racing create: the stored one wins
    assert again.versions[1].key_id == first.versions[1].key_id == "k1"
    assert kb.add_version("payments", "k2").latest_version == 2
    assert ka.get("payments") is not None and ka.names() == ["payments"]
    kb.delete("payments")
    assert ka.get("payments") is None


def test_a_failed_transaction_changes_nothing(two: tuple[GatewayStore, GatewayStore]) -> None:
    a, b = two
    with pytest.raises(ZeroDivisionError), a.db.transaction():
        a.put_keys([_key("k1", 1.0)])  # nested: joins the outer transaction
        a.record_requests([("r1", "frost", "k1", "done", {})])
        _ = 1 / 0
    assert b.get_key("k1") is None and b.get_request("r1") is None and b.count_keys() == 0


def test_placeholders_and_literal_percent_signs() -> None:
    assert to_pyformat("SELECT 1 WHERE a = ? AND b LIKE '%x%'") == (
        "SELECT 1 WHERE a = %s AND b LIKE '%%x%%'"
    )


def test_meta_like_filters_work_on_both(two: tuple[GatewayStore, GatewayStore]) -> None:
    a, b = two
    a.put_keys([replace(_key("k1", 1.0), meta={"refresh_commit": {}}), _key("k2", 2.0)])
    ids = [
        r[0]
        for r in b.db.execute("SELECT key_id FROM keys WHERE meta LIKE ?", ('%"refresh_commit"%',))
    ]
    assert ids == ["k1"]


def test_postgres_outage_is_a_clean_503_and_the_retry_succeeds(postgres_server: Any) -> None:
    store = GatewayStore(postgres_server.new_database())
    try:
        store.put_keys([_key("k1", 1.0)])
        postgres_server.stop()
        try:
            for _ in range(2):  # the broken connection, then a refused reconnect
                with pytest.raises(StoreUnavailable) as info:
                    store.count_keys()
                assert info.value.status == 503 and info.value.code == "store_unavailable"
                assert "postgres@" not in str(info.value)
            with pytest.raises(StoreUnavailable):
                store.put_keys([_key("k2", 2.0)])
        finally:
            postgres_server.start()
        assert store.count_keys() == 1  # reconnected; the write during the outage never happened
        store.put_keys([_key("k2", 2.0)])
        assert store.count_keys() == 2
    finally:
        store.close()


def test_an_unreachable_server_is_store_unavailable_at_start() -> None:
    from tests.postgres import _free_port

    with pytest.raises(StoreUnavailable, match="unavailable"):
        PostgresDatabase(f"postgresql://nobody@127.0.0.1:{_free_port()}/none", 1.0)


def test_one_gateway_at_a_time_claims_a_request(two: tuple[GatewayStore, GatewayStore]) -> None:
    a, b = SigningClaims(two[0].db), SigningClaims(two[1].db)
    assert a.claim(["r1", "r2"]) == {"r1", "r2"}
    assert b.claim(["r1", "r3"]) == {"r3"}  # r1 is a's while its lease holds
    assert a.claim(["r1"]) == {"r1"}  # a's own claim renews
    a.release(["r1"])
    assert b.claim(["r1"]) == {"r1"}
    two[0].db.execute("UPDATE signing_claims SET until = 0 WHERE request_id = ?", ("r2",))
    assert b.claim(["r2"]) == {"r2"}  # a's lease lapsed (a killed gateway): b takes it over
    a.release(["r2"])  # not a's any more: nothing changes
    assert a.claim(["r2"]) == set()
    with pytest.raises(ValueError, match="positive"):
        SigningClaims(two[0].db, 0)


def test_a_renewed_claim_outlives_its_first_lease(two: tuple[GatewayStore, GatewayStore]) -> None:
    """The holder renews while it signs: a lease that would have lapsed is extended, so the
    other gateway cannot take the request over; only the holder's rows are touched."""
    a, b = SigningClaims(two[0].db), SigningClaims(two[1].db)
    assert a.claim(["r1"]) == {"r1"} and b.claim(["r2"]) == {"r2"}
    two[0].db.execute("UPDATE signing_claims SET until = ?", (time.time() + 0.01,))
    a.renew(["r1", "r2"])  # r2 is b's: not a's to renew
    time.sleep(0.05)
    assert b.claim(["r1"]) == set()  # renewed: still a's
    assert a.claim(["r2"]) == {"r2"}  # b's lapsed (b did not renew it)


@pytest.mark.asyncio
async def test_the_api_answers_503_in_the_envelope_during_an_outage(
    postgres_server: Any, tmp_path: Path
) -> None:
    """Routes and the Idempotency middleware (outside the routes) alike; then the retry works."""
    import httpx

    from tests.gateway.conftest import Cluster
    from tholos.gateway.api import create_app

    c = Cluster(tmp_path, 3, 2, store=postgres_server.new_database())
    app = create_app(lambda: c.gateway)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://gw") as client,
    ):
        made = await client.post("/v1/keys", json={"scheme": "ed25519"})
        assert made.status_code == 201, made.text
        postgres_server.stop()
        try:
            for call in (
                client.get("/v1/keys"),
                client.get(f"/v1/keys/{made.json()['key_id']}"),
                client.post(
                    "/v1/keys", json={"scheme": "ed25519"}, headers={"Idempotency-Key": "k-1"}
                ),
            ):
                r = await call
                assert r.status_code == 503, r.text
                assert r.json()["error"]["code"] == "store_unavailable", r.text
        finally:
            postgres_server.start()
        again = await client.post(
            "/v1/keys", json={"scheme": "ed25519"}, headers={"Idempotency-Key": "k-1"}
        )
        assert again.status_code == 201, again.text
        listed = await client.get("/v1/keys")
        assert listed.status_code == 200 and len(listed.json()["keys"]) == 2


def test_a_sqlite_file_from_before_migrations_is_adopted(tmp_path: Path) -> None:
    """A gateway.db written by a gateway without migrations keeps its rows."""
    import sqlite3

    path = tmp_path / "gateway.db"
    old = sqlite3.connect(path)
    old.executescript(MIGRATIONS[0][2])  # version 1 is that schema, verbatim
    row = _key("k1", 5.0)
    old.execute(
        "INSERT INTO keys VALUES (?,?,?,?,?,?,?)",
        (
            "k1",
            row.scheme,
            None,
            row.public_key,
            '{"threshold": 2, "verifying_shares": {}}',
            "{}",
            5.0,
        ),
    )
    old.commit()
    old.close()
    store = GatewayStore(path)
    try:
        got = store.get_key("k1")
        assert got is not None and got.created == 5.0 and got.package["threshold"] == 2
        versions = [int(r[0]) for r in store.db.execute("SELECT version FROM schema_migrations")]
        assert sorted(versions) == [v for v, _, _ in MIGRATIONS]
    finally:
        store.close()


def test_a_governed_request_left_running_by_a_dead_gateway_runs_again(
    two: tuple[GatewayStore, GatewayStore],
) -> None:
    a, b = (IdempotencyStore(s.db) for s in two)
    assert a.begin("alice", "g-1", "h1") == ("new", None)  # then gateway A dies
    assert b.begin("alice", "g-1", "h1", rerun_after=60.0) == ("running", None)  # too soon
    two[0].db.execute("UPDATE idempotency SET created = created - 61 WHERE key = ?", ("g-1",))
    assert b.begin("alice", "g-1", "h2", rerun_after=60.0) == ("reused", None)
    assert b.begin("alice", "g-1", "h1") == ("running", None)  # a plain route never reruns
    assert b.begin("alice", "g-1", "h1", rerun_after=60.0) == ("new", None)  # B takes it over
    assert a.begin("alice", "g-1", "h1", rerun_after=60.0) == ("running", None)  # once
