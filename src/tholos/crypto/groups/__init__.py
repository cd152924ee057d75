"""Prime-order groups over native libraries (libsecp256k1, libsodium, blst)."""

from tholos.crypto.groups.base import Group
from tholos.crypto.groups.ed25519 import ED25519, Ed25519Group
from tholos.crypto.groups.secp256k1 import SECP256K1, Secp256k1Group

__all__ = ["ED25519", "SECP256K1", "Ed25519Group", "Group", "Secp256k1Group"]
