"""Signing options that do not apply to a key's scheme are refused (400 `option_not_for_scheme`
naming the option), for every scheme and option, on plain and governed requests: never ignored.
The scheme registry (`Scheme.options`) is the one place that decides."""

from __future__ import annotations

import os

import pytest

from tests.gateway.conftest import Api
from tests.governance.test_gateway_retry import CLUSTER, Governed, governed  # noqa: F401
from tholos.cli.governance_cmds import build_request
from tholos.gateway.service import GatewayError
from tholos.schemes import SCHEMES, SIGNING_OPTIONS, OptionNotForScheme

VALUES = {"path": "m/0/1", "taproot_tweak": True, "merkle_root": "ab" * 32}
EXPECTED = {
    "bip340": {"path", "taproot_tweak", "merkle_root"},
    "secp256k1": {"path"},
    "ecdsa": {"path"},
    "ed25519": set(),
    "bls12381": set(),
    "dise": set(),
}
NOT_APPLYING = [
    (scheme, option)
    for scheme, allowed in EXPECTED.items()
    for option in SIGNING_OPTIONS
    if option not in allowed
]


def test_the_registry_names_each_schemes_options() -> None:
    assert {name: set(s.options) for name, s in SCHEMES.items()} == EXPECTED
    for scheme, option in NOT_APPLYING:
        with pytest.raises(OptionNotForScheme) as err:
            SCHEMES[scheme].check_options(**{option: VALUES[option]})
        assert err.value.option == option and option in str(err.value)
    SCHEMES["bip340"].check_options(path="m/1", taproot_tweak=True, merkle_root=b"\1" * 32)
    SCHEMES["ed25519"].check_options(path="m", taproot_tweak=False, merkle_root=None)  # defaults


@pytest.mark.asyncio
async def test_rest_refuses_options_not_for_the_scheme(api: Api) -> None:
    client, c = api
    keys = {}
    for scheme in EXPECTED:
        r = await client.post("/v1/keys", json={"scheme": scheme})
        assert r.status_code == 201, r.text
        keys[scheme] = r.json()["key_id"]
    before = c.gateway.store.db.execute("SELECT COUNT(*) FROM requests").fetchone()[0]
    for scheme, option in NOT_APPLYING:
        body = {"message": os.urandom(32).hex(), option: VALUES[option]}
        if option == "merkle_root":
            body["taproot_tweak"] = True  # the root alone is refused too: see below
        for url, payload in [
            (f"/v1/keys/{keys[scheme]}/sign", body),
            ("/v1/sign", {"requests": [{**body, "key_id": keys[scheme]}]}),
        ]:
            if url == "/v1/sign" and scheme in ("ecdsa", "bls12381", "dise"):
                continue  # round-signed keys have no batch route (refused as unsupported)
            r = await client.post(url, json=payload)
            assert r.status_code == 409, (scheme, option, url, r.text)
            err = r.json()["error"]
            assert err["code"] == "option_not_for_scheme", (scheme, option, err)
            assert err["option"] in (option, "taproot_tweak") and err["scheme"] == scheme, err
    after = c.gateway.store.db.execute("SELECT COUNT(*) FROM requests").fetchone()[0]
    assert after == before  # nothing was signed
    # what does apply still signs
    r = await client.post(
        f"/v1/keys/{keys['bip340']}/sign",
        json={"message": "00" * 32, "taproot_tweak": True, "merkle_root": "ab" * 32},
    )
    assert r.status_code == 200, r.text
    r = await client.post(
        f"/v1/keys/{keys['secp256k1']}/sign", json={"message": "00", "path": "m/3"}
    )
    assert r.status_code == 200, r.text


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("scheme", "option", "extra"),
    [
        ("ecdsa", "taproot_tweak", {"taproot": True}),
        ("ed25519", "path", {"path": "m/0/1"}),
        ("bls12381", "path", {"path": "m/2"}),
    ],
)
async def test_governed_requests_refuse_them_too(
    governed: Governed,  # noqa: F811
    scheme: str,
    option: str,
    extra: dict[str, object],
) -> None:
    key_id = (await governed.gw.create_keys(scheme))[0].key_id
    req = build_request(
        CLUSTER,
        "initiator",
        governed.keys["initiator"],
        key_id=key_id,
        chain="raw",
        asset="RAW",
        destination="addr-1",
        amount=5,
        data=os.urandom(32),
        **extra,  # type: ignore[arg-type]
    )
    with pytest.raises(GatewayError) as err:
        await governed.g.create([(req, [])])
    assert err.value.status == 409 and err.value.code == "option_not_for_scheme", err.value
    assert err.value.extra["option"] == option
    assert governed.g.list_requests(None, 10) == []  # nothing stored, nothing reserved
