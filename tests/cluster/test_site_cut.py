"""The three-data-centre model: a site cut off the gateway (its relays black-holed, as a failed WAN
path) does not stop signing, and its nodes catch up when the link returns.

n=5, t=2 over three sites (netsim/sites.py: node i in site (i-1) mod 3): site 0 = {1, 4} with the
gateway, site 1 = {2, 5}, site 2 = {3}. Site 1 is cut while keys sign (FROST and ECDSA, without it) and a
refresh is refused cleanly (it needs every holder); after the link is back the refresh runs, and
nodes 2 and 5 alone (the others killed) sign with every key: they are back in step.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from tests.cluster.conftest import LocalCluster, wait_until
from tests.cluster.verify import verify
from tholos.bench.wan import WanLinks
from tholos.netsim.sites import WanProfile

pytestmark = pytest.mark.slow


def _sign_ok(c: LocalCluster, scheme: str, key_id: str) -> list[int]:
    msg = os.urandom(32)
    out = c.sign(key_id, msg)
    assert verify(scheme, msg, bytes.fromhex(out["signature"]), bytes.fromhex(out["public_key"]))
    return list(out["signers"])


def test_a_cut_site_does_not_stop_signing_and_catches_up(
    make_cluster: Callable[..., LocalCluster],
) -> None:
    c = make_cluster(5, 2)
    c.configure_gateway(rpc_timeout=3.0)
    with WanLinks(c.cd.gateway_config, WanProfile(inter_site_rtt_ms=10.0)) as links:
        c.start()
        keys = {s: c.create_key(s)["key_id"] for s in ("bip340", "ed25519")}
        ecdsa = c.create_key("ecdsa")["key_id"]
        public = {k: c.get(f"/v1/keys/{k}")["public_key"] for k in [*keys.values(), ecdsa]}
        for scheme, key_id in keys.items():
            _sign_ok(c, scheme, key_id)

        assert links.fleet.cut_site(1) == [2, 5]
        for _ in range(4):
            for scheme, key_id in keys.items():
                assert not {2, 5} & set(_sign_ok(c, scheme, key_id))
        digest = os.urandom(32)
        out = c.post(f"/v1/keys/{ecdsa}/sign", {"message": digest.hex()})
        assert not {2, 5} & set(out["signers"])
        refreshed = keys["bip340"]
        # A refresh needs every holder: refused cleanly, naming the missing nodes, nothing changed.
        err = c.post(f"/v1/keys/{refreshed}/refresh", {}, expect=503)["error"]
        assert err["code"] in ("nodes_unavailable", "refresh_failed"), err
        _sign_ok(c, "bip340", refreshed)

        links.fleet.restore_site(1)
        wait_until(lambda: c.get("/v1/health")["nodes_up"] == 5, 60, "site 1 back")
        c.post(f"/v1/keys/{refreshed}/refresh", {})  # now it can: every node takes the new epoch
        for i in (1, 3, 4):
            c.kill(f"node-{i}")
        for scheme, key_id in keys.items():  # only 2 and 5 are left: they must hold the shares
            msg = os.urandom(32)
            got = wait_until(lambda k=key_id, m=msg: c.sign(k, m), 60, f"{scheme} by 2 and 5")
            assert sorted(got["signers"]) == [2, 5]
            assert verify(
                scheme, msg, bytes.fromhex(got["signature"]), bytes.fromhex(got["public_key"])
            )
        assert {k: c.get(f"/v1/keys/{k}")["public_key"] for k in public} == public
