"""Bitcoin: Taproot key-path (bip340 keys) and P2WPKH (ecdsa keys) wallets on threshold keys.

Layout: the wallet's xpub is the key's root node (depth 0; DKG keys' chain code is
`tholos.schemes.chain_code_for`), receive addresses `m/0/i`, change `m/1/i`, non-hardened (BIP86's
hardened path cannot be derived from the public side). See `wallet` for addresses, `psbt` for the
strict loading, `chain` for the node's parse and the finalisation, `builder` for unsigned PSBTs.
"""

from tholos.chains.bitcoin.builder import Utxo, build_psbt
from tholos.chains.bitcoin.chain import BitcoinChain
from tholos.chains.bitcoin.wallet import address_of, script_of

BITCOIN = BitcoinChain()

__all__ = [
    "BITCOIN",
    "BitcoinChain",
    "Utxo",
    "address_of",
    "build_psbt",
    "script_of",
]
