"""Known-answer pins of what tholos stores or hands out encrypted: a DiSE ciphertext, a node's
sealed master key record and sealed key row (node/barrier.py, node/vault.py), and a blob sealed to
a client (crypto/seal.py). Each was made ONCE by the code of 2026-12-03 from the fixed inputs
below; current code must still open it. A format change (tags, KDF info, header layout, associated
data, share encoding) fails here instead of silently orphaning stored data."""

from __future__ import annotations

from pathlib import Path

import coincurve
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from tholos.crypto import dise, seal
from tholos.crypto.groups.ed25519 import ED25519
from tholos.crypto.hazmat.dealer import deal_key_shares
from tholos.node.barrier import Barrier, SealError, Unsealer, open_master
from tholos.node.store import NodeStore
from tholos.node.vault import KeyVault

# -- DiSE: secret k = int.from_bytes(bytes(1..32), "little") mod order, t = 2, encryptor
# "kat-client", plaintext below. Decrypted with a fresh dealing of the same k (shares differ, k not).
DISE_SECRET = int.from_bytes(bytes(range(1, 33)), "little") % ED25519.order
DISE_PLAINTEXT = b"tholos dise known answer"
DISE_CIPHERTEXT = bytes.fromhex(
    "544844530101147773d0b14d86da401c52369100ca1597222930fb02a28fc46121ba503285d60a6b61742d636c"
    "69656e7462b1b718664d65aff1f2ba25366ebb56e591777c32dbae103f156962f49f15caded1cde94f63d78075"
    "f2477aba3d2e71a9ed9cb5af9e1b04883ade2f63f8aa03deb445f5ced973be93d308e44b49f60e663f802cd6dd"
    "cac0b4e3a37c730bbbe5b4f445a8f8cbee05"
)

# -- crypto/seal.py: client X25519 key 07*32, digest 11*32, sender node 3.
SEAL_BLOB = bytes.fromhex(
    "7f6edd05971f07e2330e10b37dde54068e3e754ef4c5ce552c545df6b72d9a3f6fb8c0c44571ff50f98c13bd09"
    "380c8ce201b113aa9d9421a338e24f4e1a3a68af77"
)

# -- node barrier: a row sealed under master 09*32, table "keys", row id "kat-key".
BARRIER_ROW = bytes.fromhex(
    "463b5aad24ffd209ba844bf306aa9daeb89c31fd2310c98222877f1b80c2b4fd5dc4175f98c17a23069e42fe"
)

# -- a node's master key record (key file of 5a*32) and the vault row of a secp256k1 share
# (secret 0x1234567890abcdef, t = 2 of 3, node 1) sealed under that master.
KEY_FILE = "5a" * 32
MASTER_RECORD = (
    '{"kdf": "keyfile", "version": 1, "wrapped": "ca4010798f10d6aaa89d684d1ec4ffaccdba803e89523c'
    '512d021f44cb76665eb9c19deb99a47b31a1295c8b1dbe5ddd069da5c6b00269ae1aa52005"}'
)
MASTER = "623f6bbc97af25721263efc9515ca2a05f391a353e0a4fd509672716698b7def"
GROUP_KEY = "03f973a0b87062c389d125d8199e803b832b6ac6bf7867a4f6cd87506060fc4c58"
VERIFYING = {
    "1": "033785da09f6dc970da3d394367a71c0cbf95fad7eba07d19fe9bcb7adde671eeb",
    "2": "0303622fe5ab550aceb6d5d8e7ab02665ab70a267b730e19d455f03508755cf89f",
    "3": "03605e6452486ea22fca4859c5f330add02984d15421ff971874452aadd2c2bff2",
}
VAULT_PUBLIC = (
    '{"scheme": "secp256k1", "public": {"version": 1, "group": "secp256k1", "threshold": 2, '
    f'"group_public_key": "{GROUP_KEY}", "verifying_shares": {{"1": "{VERIFYING["1"]}", '
    f'"2": "{VERIFYING["2"]}", "3": "{VERIFYING["3"]}"}}}}, "meta": {{}}}}'
)
VAULT_SEALED = bytes.fromhex(
    "96003487f3b4188ccaa1e3c7f7ce30267e195d4d12797106dc94d9bbbc10c6130099449789788e66629f5ad7c8"
    "2a342590c9e8ca42deed1b207ce0bb805d37e6e8b9579518eea9ccf15c5e67b22e2e90d875ef94ee49eb148bd3"
    "f83e3b8759ea89e8bb471b46ab6e1a070b988eedcf4fe71027fad107b380139cde6fdc41ada354c2ea98d3999f"
    "79926c66e676a8ea6a841b66a57c6a6d9b62c0e013ccd04840fded093ad4677cd2eb303c649b8795af1bf94fef"
    "5076bdfc7bcac784b365d62da2fa3a6a8b7774b3552287cd76ceca4c43d84ce604b8eb7d000e26594f214fa32f"
    "7bfa2e3645634126de22e5aa9eae1dda6c37037ada2664bdb70c2d1d451103485475b6d9b0112d44ffcf488382"
    "e15e2344fd6c85eb3229be2119141978f5028f1b6ea8cb65820f09497dc509dd34e5e765dc3f9f1fcacc622b9b"
    "466e3e46f0d506b43d2b917ca2557b9a379c4c7212067461957815278965afbb880370280e3681f7c3e1dcca67"
    "a3478ca75799ee48ed2a9d5c9415ba621d7f732584b48199d442a31f9dec217fcb4975d0de86b33b5d84e80995"
    "0b15220f95985c5bd1707d95a8a8ae077caad614416bb842eea06db08e9678a292779640364ae9e58f54e239a5"
    "9a3437e73697cca96d8c1ce70be9af13aead21601fc116da7af744a88385392027cf82ee4f94ffe45a448a433b"
    "33bdd714f630510b2f32493e08989a4eebce2065e9f4b4f1a71b5307c26a2485e25ba56988502ac541dc1a739e"
    "c75035ce"
)
SHARE = "db6ea5f654b973504c0a6c4830d78eb77c3b212d43c33c3dd9ecf00d10683b1c"


def test_dise_ciphertext_still_decrypts() -> None:
    shares = deal_key_shares(ED25519, DISE_SECRET, 2, [1, 2, 3])
    assert dise.decrypt(shares[1:], DISE_CIPHERTEXT) == DISE_PLAINTEXT
    assert dise.decrypt([shares[0], shares[2]], DISE_CIPHERTEXT) == DISE_PLAINTEXT
    flipped = bytearray(DISE_CIPHERTEXT)
    flipped[-1] ^= 1
    with pytest.raises(dise.InvalidCiphertext):
        dise.decrypt(shares[:2], bytes(flipped))


def test_client_sealed_blob_still_opens() -> None:
    key = X25519PrivateKey.from_private_bytes(bytes([7]) * 32)
    assert seal.open_sealed(key, b"\x11" * 32, 3, SEAL_BLOB) == b"sealed partial kat"
    with pytest.raises(seal.SealError):
        seal.open_sealed(key, b"\x11" * 32, 2, SEAL_BLOB)  # another node's slot


def test_barrier_row_still_opens() -> None:
    barrier = Barrier(bytes([9]) * 32)
    assert barrier.open("keys", "kat-key", BARRIER_ROW) == b'{"share": "kat"}'
    with pytest.raises(SealError):
        barrier.open("keys", "other-key", BARRIER_ROW)  # bound to its row id


def test_stored_key_row_still_loads(tmp_path: Path) -> None:
    (tmp_path / "master.key").write_text(KEY_FILE)
    master = open_master(Unsealer(key_file=tmp_path / "master.key"), MASTER_RECORD)
    assert master.hex() == MASTER
    store = NodeStore(tmp_path / "node.db")
    store.put_keys([("kat-vault-key", "secp256k1", VAULT_PUBLIC, VAULT_SEALED)])
    record = KeyVault(store, Barrier(master), 1).record("kat-vault-key")
    assert record.scheme.name == "secp256k1"
    secret = record.share.export_secret()
    assert secret["secret_share"] == SHARE and secret["identifier"] == 1
    # libsecp256k1, not our group code: the share's public point is the pinned verifying share
    assert coincurve.PublicKey.from_secret(bytes.fromhex(SHARE)).format().hex() == VERIFYING["1"]
