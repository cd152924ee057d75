"""The vault's opened-share cache is bounded: least recently used shares are dropped and opened
again from the store when asked for; 0 keeps none; the bound comes from the node config."""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tholos.crypto.hazmat.dealer import deal_key_shares
from tholos.node.barrier import Barrier
from tholos.node.config import NodeConfig
from tholos.node.store import NodeStore
from tholos.node.vault import KeyVault, LruCache
from tholos.schemes import SCHEMES

OPS = st.lists(
    st.tuples(st.sampled_from(["get", "put", "pop"]), st.integers(0, 7), st.integers()),
    max_size=60,
)


@given(capacity=st.integers(0, 5), ops=OPS)
def test_lru_matches_a_reference(capacity: int, ops: list[tuple[str, int, int]]) -> None:
    """Against an OrderedDict kept by hand: same answers, never more than `capacity` entries,
    the least recently used (read or written) is the one dropped."""
    cache: LruCache[int, int] = LruCache(capacity)
    ref: OrderedDict[int, int] = OrderedDict()
    for op, key, value in ops:
        if op == "get":
            assert cache.get(key) == ref.get(key)
            if key in ref:
                ref.move_to_end(key)
        elif op == "put":
            if capacity:
                ref[key] = value
                ref.move_to_end(key)
                while len(ref) > capacity:
                    ref.popitem(last=False)
            cache.put(key, value)
        else:
            assert cache.pop(key) == ref.pop(key, None)
        assert len(cache) == len(ref) <= capacity
        assert all(k in cache for k in ref)


def test_negative_capacity_is_refused() -> None:
    with pytest.raises(ValueError, match="capacity must be 0 or more"):
        LruCache(-1)


def test_repr_shows_no_entry() -> None:
    cache: LruCache[str, bytes] = LruCache(2)
    cache.put("k", b"secret-share")
    assert "secret" not in repr(cache) and repr(cache) == "LruCache(1/2)"


def _vault(tmp_path: Path, cache_size: int, keys: int) -> tuple[KeyVault, list[str]]:
    scheme = SCHEMES["bip340"]
    store = NodeStore(tmp_path / "node.db")
    vault = KeyVault(store, Barrier(os.urandom(32)), 1, cache_size)
    ids = [f"key{i}" for i in range(keys)]
    records = []
    for key_id in ids:
        share = next(
            s for s in deal_key_shares(scheme.group, None, 2, range(1, 4)) if s.identifier == 1
        )
        records.append((key_id, scheme, share, {}))
    vault.store_shares(records)
    return vault, ids


def test_vault_keeps_at_most_its_bound(tmp_path: Path) -> None:
    vault, ids = _vault(tmp_path, 2, 5)
    try:
        assert len(vault._cache) == 2  # the last two stored
        assert set(ids[3:]) == {k for k in ids if k in vault._cache}
        first = vault.record(ids[0])  # evicted: opened again from its sealed row
        assert first.share.identifier == 1 and ids[0] in vault._cache
        assert len(vault._cache) == 2 and ids[3] not in vault._cache
        assert vault.record(ids[0]) is first  # cached now
        assert vault.has_key(ids[3])  # evicted is not unknown
    finally:
        vault._store.close()


def test_vault_without_cache_opens_each_time(tmp_path: Path) -> None:
    vault, ids = _vault(tmp_path, 0, 2)
    try:
        a, b = vault.record(ids[0]), vault.record(ids[0])
        assert a is not b and a.share.public == b.share.public
        assert len(vault._cache) == 0
    finally:
        vault._store.close()


def _config(tmp_path: Path, **extra: object) -> Path:
    path = tmp_path / "node.json"
    path.write_text(
        json.dumps(
            {
                "node_id": 1,
                "listen": "127.0.0.1:0",
                "db": "node.db",
                "tls": {"ca": "ca.pem", "cert": "node.pem", "key": "node.key"},
                "identity_file": "identity.key",
                "roster": [],
                **extra,
            }
        )
    )
    return path


def test_config_bound(tmp_path: Path) -> None:
    assert NodeConfig.load(_config(tmp_path)).share_cache == 10_000
    assert NodeConfig.load(_config(tmp_path, share_cache=0)).share_cache == 0


@pytest.mark.parametrize("bad", [-1, 1.5, "10", True])
def test_config_bound_must_be_a_count(tmp_path: Path, bad: object) -> None:
    with pytest.raises(ValueError, match="share_cache must be a whole number"):
        NodeConfig.load(_config(tmp_path, share_cache=bad))
