"""Wallets over REST on an in-memory cluster: create on new or existing keys, list, show, and
addresses cross-checked against embit (BIP32 from the same xpub, p2tr/p2wpkh scripts), eth-keys
(EIP-55 address of the child key) and solders; bad input is a 4xx in the envelope, nothing stored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from embit import script as embit_script
from embit.bip32 import HDKey
from embit.ec import PublicKey as EmbitPublicKey
from embit.networks import NETWORKS
from eth_keys import keys as eth_keys
from solders.pubkey import Pubkey

from tests.gateway.conftest import Api, Cluster, expect_error
from tests.gateway.test_http_api import WithCert
from tholos.gateway.api import create_app
from tholos.gateway.identities import ApiClients, fingerprint_pem
from tholos.transport.pki import CertificateAuthority

pytestmark = pytest.mark.asyncio
EMBIT = {"mainnet": "main", "testnet": "test", "signet": "signet", "regtest": "regtest"}


async def _ok(r: Any, status: int = 200) -> dict[str, Any]:
    resp = await r
    assert resp.status_code == status, resp.text
    out: dict[str, Any] = resp.json()
    return out


def _embit_address(xpub: str, branch: int, index: int, address_type: str, network: str) -> str:
    child = HDKey.from_string(xpub).derive([branch, index])
    pub = EmbitPublicKey.parse(child.key.sec())
    spk = embit_script.p2tr(pub) if address_type == "p2tr" else embit_script.p2wpkh(pub)
    return str(spk.address(NETWORKS[EMBIT[network]]))


@pytest.mark.parametrize(
    ("address_type", "network"), [("p2tr", "regtest"), ("p2wpkh", "mainnet"), ("p2tr", "signet")]
)
async def test_bitcoin_addresses_match_embit(api: Api, address_type: str, network: str) -> None:
    client, _ = api
    w = await _ok(
        client.post(
            "/v1/wallets",
            json={"chain": "bitcoin", "network": network, "address_type": address_type},
        ),
        201,
    )
    assert w["chain"] == "bitcoin" and w["network"] == network
    assert w["address_type"] == address_type
    assert w["scheme"] == ("bip340" if address_type == "p2tr" else "ecdsa")
    key = await _ok(client.get(f"/v1/keys/{w['key_id']}"))
    root = HDKey.from_string(w["xpub"])
    assert root.depth == 0 and root.my_fingerprint.hex() == w["master_fingerprint"]
    # the xpub is the key's own group key (bip340 keys are shown x-only)
    assert root.key.sec().hex().endswith(key["public_key"])
    assert w["address"] == _embit_address(w["xpub"], 0, 0, address_type, network)
    for index, change in ((7, False), (2**31 - 1, False), (3, True)):
        a = await _ok(
            client.get(
                f"/v1/wallets/{w['wallet_id']}/addresses/{index}",
                params={"change": str(change).lower()},
            )
        )
        branch = 1 if change else 0
        assert a["path"] == f"m/{branch}/{index}" and a["index"] == index and a["change"] is change
        assert a["address"] == _embit_address(w["xpub"], branch, index, address_type, network)
        child = HDKey.from_string(w["xpub"]).derive([branch, index]).key.sec()
        assert a["public_key"] == (child[1:] if address_type == "p2tr" else child).hex()


async def test_ethereum_addresses_match_eth_keys(api: Api) -> None:
    client, _ = api
    key = await _ok(client.post("/v1/keys", json={"scheme": "ecdsa"}), 201)
    w = await _ok(
        client.post(
            "/v1/wallets",
            json={
                "chain": "ethereum",
                "network": "sepolia",
                "key_id": key["key_id"],
                "label": "ops",
            },
        ),
        201,
    )
    assert w["network"] == "11155111" and w["address_type"] == "eoa" and w["label"] == "ops"
    assert w["key_id"] == key["key_id"]
    for index in (0, 5, 2**31 - 1):
        a = await _ok(client.get(f"/v1/wallets/{w['wallet_id']}/addresses/{index}"))
        child = HDKey.from_string(w["xpub"]).derive([0, index]).key.sec()
        expected = eth_keys.PublicKey.from_compressed_bytes(child).to_checksum_address()
        assert a["address"] == expected and a["path"] == f"m/0/{index}"
        assert a["public_key"] == child.hex()
        if index == 0:
            assert w["address"] == expected
    expect_error(
        await client.get(f"/v1/wallets/{w['wallet_id']}/addresses/1", params={"change": "true"}),
        409,
        "bad_index",
    )


async def test_solana_wallet_is_its_ed25519_key(api: Api) -> None:
    client, _ = api
    w = await _ok(client.post("/v1/wallets", json={"chain": "solana", "network": "devnet"}), 201)
    key = await _ok(client.get(f"/v1/keys/{w['key_id']}"))
    assert key["scheme"] == "ed25519" and "xpub" not in w
    assert w["address"] == str(Pubkey.from_bytes(bytes.fromhex(key["public_key"])))
    a = await _ok(client.get(f"/v1/wallets/{w['wallet_id']}/addresses/0"))
    assert a == {
        "wallet_id": w["wallet_id"],
        "address": w["address"],
        "index": 0,
        "path": "m",
        "public_key": key["public_key"],
        "change": False,
    }
    expect_error(await client.get(f"/v1/wallets/{w['wallet_id']}/addresses/1"), 409, "bad_index")


async def test_list_show_and_paging(api: Api) -> None:
    client, _ = api
    made = [
        await _ok(client.post("/v1/wallets", json={"chain": c, "network": n}), 201)
        for c, n in (("solana", "localnet"), ("ethereum", "anvil"), ("bitcoin", "testnet"))
    ]
    page = await _ok(client.get("/v1/wallets", params={"limit": 2}))
    assert page["total"] == 3 and page["next_offset"] == 2 and len(page["wallets"]) == 2
    rest = await _ok(client.get("/v1/wallets", params={"limit": 2, "offset": 2}))
    assert rest["next_offset"] is None
    ids = [w["wallet_id"] for w in page["wallets"] + rest["wallets"]]
    assert ids == [w["wallet_id"] for w in made]
    eth = await _ok(client.get("/v1/wallets", params={"chain": "ethereum"}))
    assert [w["network"] for w in eth["wallets"]] == ["31337"]
    for w in made:
        assert await _ok(client.get(f"/v1/wallets/{w['wallet_id']}")) == w
    assert made[2]["xpub"].startswith("tpub")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"chain": "dogecoin", "network": "mainnet"}, 400, "invalid_request"),
        ({"chain": "bitcoin", "network": "moon"}, 400, "invalid_request"),
        ({"chain": "ethereum", "network": "goerli"}, 400, "invalid_request"),
        ({"chain": "ethereum", "network": "0"}, 400, "invalid_request"),
        ({"chain": "solana", "network": "mainnet"}, 400, "invalid_request"),
        (
            {"chain": "bitcoin", "network": "mainnet", "address_type": "p2pkh"},
            400,
            "invalid_request",
        ),
        ({"chain": "ethereum", "network": "1", "address_type": "p2tr"}, 400, "invalid_request"),
        ({"chain": "bitcoin", "network": "mainnet", "key_id": "0" * 32}, 404, "unknown_key"),
        ({"chain": "bitcoin", "network": "mainnet", "key_id": "zz"}, 400, "invalid_request"),
        ({"chain": "bitcoin", "network": 1}, 400, "invalid_request"),
        ({"chain": "bitcoin", "network": "mainnet", "extra": 1}, 400, "invalid_request"),
        ({"chain": "bitcoin", "network": "mainnet", "label": "<b>"}, 400, "invalid_request"),
    ],
)
async def test_bad_wallets_are_refused_and_nothing_is_stored(
    api: Api, body: dict[str, Any], status: int, code: str
) -> None:
    client, cluster = api
    expect_error(await client.post("/v1/wallets", json=body), status, code)
    assert cluster.gateway.store.wallets.count() == 0
    assert cluster.gateway.store.count_keys() == 0  # no key made for a wallet that is refused


@pytest.mark.parametrize(
    ("scheme", "chain", "address_type"),
    [
        ("ed25519", "bitcoin", None),
        ("ecdsa", "bitcoin", "p2tr"),
        ("bip340", "bitcoin", "p2wpkh"),
        ("bip340", "ethereum", None),
        ("ecdsa", "solana", None),
        ("bls12381", "ethereum", None),
    ],
)
async def test_a_key_of_the_wrong_scheme_is_refused(
    api: Api, scheme: str, chain: str, address_type: str | None
) -> None:
    client, cluster = api
    key = await _ok(client.post("/v1/keys", json={"scheme": scheme}), 201)
    network = {"bitcoin": "regtest", "ethereum": "1", "solana": "devnet"}[chain]
    body = {"chain": chain, "network": network, "key_id": key["key_id"]}
    if address_type:
        body["address_type"] = address_type
    err = expect_error(await client.post("/v1/wallets", json=body), 409, "wrong_scheme")
    assert scheme in err["message"]
    assert cluster.gateway.store.wallets.count() == 0


async def test_the_address_type_follows_the_key(api: Api) -> None:
    client, _ = api
    key = await _ok(client.post("/v1/keys", json={"scheme": "ecdsa"}), 201)
    w = await _ok(
        client.post(
            "/v1/wallets", json={"chain": "bitcoin", "network": "regtest", "key_id": key["key_id"]}
        ),
        201,
    )
    assert w["address_type"] == "p2wpkh" and w["address"].startswith("bcrt1q")


@pytest.mark.parametrize(
    "index", ["-1", "2147483648", "9223372036854775808", "1.5", "0x10", "true"]
)
async def test_index_out_of_range(api: Api, index: str) -> None:
    client, _ = api
    w = await _ok(client.post("/v1/wallets", json={"chain": "ethereum", "network": "1"}), 201)
    expect_error(
        await client.get(f"/v1/wallets/{w['wallet_id']}/addresses/{index}"), 400, "invalid_request"
    )


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "offset=-1", "offset=2147483649"])
async def test_list_bounds(api: Api, query: str) -> None:
    client, _ = api
    expect_error(await client.get(f"/v1/wallets?{query}"), 400, "invalid_request")


async def test_unknown_wallets(api: Api) -> None:
    client, _ = api
    for wid in ("0" * 32, "nope", "A" * 32):
        expect_error(await client.get(f"/v1/wallets/{wid}"), 404, "unknown_wallet")
        expect_error(await client.get(f"/v1/wallets/{wid}/addresses/0"), 404, "unknown_wallet")


async def test_roles(tmp_path: Path) -> None:
    ca = CertificateAuthority.create()
    pems = {n: ca.issue(n, server=False, client=True).cert_pem.decode() for n in ("ro", "op", "si")}
    roles = {"ro": "read-only", "op": "operator", "si": "signer"}
    config = {n: {"fingerprint": fingerprint_pem(p), "role": roles[n]} for n, p in pems.items()}
    c = Cluster(tmp_path, 4, 2)
    app = create_app(lambda: c.gateway, ApiClients.from_config(config, {}))

    def as_(name: str) -> httpx.AsyncClient:
        t = httpx.ASGITransport(app=WithCert(app, pems[name]))
        return httpx.AsyncClient(transport=t, base_url="http://gw")

    body = {"chain": "solana", "network": "devnet"}
    async with app.router.lifespan_context(app), as_("ro") as ro, as_("si") as si, as_("op") as op:
        expect_error(await ro.post("/v1/wallets", json=body), 403, "forbidden")
        expect_error(await si.post("/v1/wallets", json=body), 403, "forbidden")
        assert c.gateway.store.wallets.count() == 0
        w = await _ok(op.post("/v1/wallets", json=body), 201)
        assert (await ro.get("/v1/wallets")).json()["total"] == 1
        assert (await ro.get(f"/v1/wallets/{w['wallet_id']}")).status_code == 200
        assert (await ro.get(f"/v1/wallets/{w['wallet_id']}/addresses/0")).status_code == 200
