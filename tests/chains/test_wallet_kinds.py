"""Which wallets a key can be (`tholos.chains.wallet_kinds`): normalisation, refusals naming the
field, and `ref_of` (what the CLI rebuilds from a shown wallet) deriving the addresses embit
derives from the same xpub at any index."""

from __future__ import annotations

import os

import pytest
from embit import script as embit_script
from embit.bip32 import HDKey
from embit.ec import PublicKey as EmbitPublicKey
from embit.networks import NETWORKS
from eth_keys import keys as eth_keys
from hypothesis import given, settings
from hypothesis import strategies as st

from tholos.chains.base import ChainError, WalletRef
from tholos.chains.registry import chain_for
from tholos.chains.wallet_kinds import ref_of, root_node, wallet_kind
from tholos.crypto import bip32
from tholos.crypto.groups.secp256k1 import SECP256K1

_ROOT = bip32.ExtendedPublicKey(
    public_key=SECP256K1.base_mul(int.from_bytes(os.urandom(32), "big") % SECP256K1.order),
    chain_code=os.urandom(32),
)


def _ref(chain: str, network: str, scheme: str, address_type: str) -> WalletRef:
    return WalletRef("w", chain, network, scheme, address_type, _ROOT.key_bytes, _ROOT.chain_code)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("bitcoin", "regtest"), ("regtest", "p2tr", "bip340")),
        (("bitcoin", "mainnet", None, "ecdsa"), ("mainnet", "p2wpkh", "ecdsa")),
        (("ethereum", "Holesky"), ("17000", "eoa", "ecdsa")),
        (("ethereum", "anvil", "eoa", "ecdsa"), ("31337", "eoa", "ecdsa")),
        (("ethereum", "137"), ("137", "eoa", "ecdsa")),
        (("solana", "mainnet-beta", None, "ed25519"), ("mainnet-beta", "account", "ed25519")),
    ],
)
def test_normalised(args: tuple[str, ...], expected: tuple[str, str, str]) -> None:
    k = wallet_kind(*args)
    assert (k.network, k.address_type, k.scheme) == expected


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("litecoin", "mainnet"), "chain"),
        (("bitcoin", "testnet3"), "network"),
        (("ethereum", "-1"), "network"),
        (("ethereum", str(2**64)), "network"),
        (("solana", "devnet", "eoa"), "address_type"),
        (("bitcoin", "mainnet", "p2tr", "ecdsa"), "key_id"),
        (("bitcoin", "mainnet", None, "ed25519"), "key_id"),
        (("ethereum", "1", None, "bip340"), "key_id"),
    ],
)
def test_refused_naming_the_field(args: tuple[str | None, ...], field: str) -> None:
    with pytest.raises(ChainError) as e:
        wallet_kind(*args)  # type: ignore[arg-type]
    assert e.value.field == field


@settings(max_examples=40, deadline=None)
@given(
    index=st.integers(0, 2**31 - 1),
    change=st.booleans(),
    kind=st.sampled_from([("p2tr", "bip340", "testnet"), ("p2wpkh", "ecdsa", "mainnet")]),
)
def test_bitcoin_addresses_from_the_shown_xpub_match_embit(
    index: int, change: bool, kind: tuple[str, str, str]
) -> None:
    address_type, scheme, network = kind
    ref = _ref("bitcoin", network, scheme, address_type)
    node = root_node(ref)
    assert node is not None
    shown = {"wallet_id": "w", "chain": "bitcoin", "network": network, "scheme": scheme}
    rebuilt = ref_of({**shown, "address_type": address_type, "xpub": node.to_xpub()})
    assert rebuilt == ref
    chain = chain_for("bitcoin")
    assert chain is not None
    got = chain.address(rebuilt, index, change=change)
    child = HDKey.from_string(node.to_xpub()).derive([int(change), index]).key.sec()
    pub = EmbitPublicKey.parse(child)
    spk = embit_script.p2tr(pub) if address_type == "p2tr" else embit_script.p2wpkh(pub)
    net = NETWORKS["main" if network == "mainnet" else "test"]
    assert got.address == str(spk.address(net))


@settings(max_examples=40, deadline=None)
@given(index=st.integers(0, 2**31 - 1))
def test_ethereum_addresses_match_eth_keys(index: int) -> None:
    ref = _ref("ethereum", "1", "ecdsa", "eoa")
    chain = chain_for("ethereum")
    assert chain is not None
    child = HDKey.from_string(_ROOT.to_xpub()).derive([0, index]).key.sec()
    got = chain.address(ref, index)
    assert got.address == eth_keys.PublicKey.from_compressed_bytes(child).to_checksum_address()


@pytest.mark.parametrize("index", [-1, 2**31])
def test_index_out_of_range(index: int) -> None:
    for chain, ref in (
        ("bitcoin", _ref("bitcoin", "regtest", "bip340", "p2tr")),
        ("ethereum", _ref("ethereum", "1", "ecdsa", "eoa")),
    ):
        package = chain_for(chain)
        assert package is not None
        with pytest.raises(ChainError) as e:
            package.address(ref, index)
        assert e.value.field == "index"
