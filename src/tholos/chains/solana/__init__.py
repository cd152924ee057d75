"""Solana: addresses, the parse of a wire transaction into the intent it carries, and assembly.

Addresses. A Solana account address is the base58 of an ed25519 public key; here, of the wallet's
FROST-Ed25519 group key. Standard Solana wallets derive further accounts with hardened SLIP-10
(m/44'/501'/i'/0'), which needs the whole secret key and so cannot exist for a threshold key, and
ed25519 has no public derivation: a wallet has exactly one address (index 0, path "m"). Any other
index is refused; a wallet that needs more addresses uses more keys.

Networks: mainnet-beta, devnet, testnet, localnet. A Solana transaction does not name its cluster:
the network is what the approved intent says. A recent blockhash pins a cluster only implicitly
(it exists on one cluster and expires after ~150 blocks); a durable-nonce transaction (first
instruction AdvanceNonceAccount, shown as `details["durable_nonce_account"]`) never expires.

What `parse` accepts: a proof-of-reserves envelope (`chains/proof_of_control.py`: the node signs
its own text as a Solana off-chain message, version 0, `offchain.py`), or a wire transaction (raw bytes, or base64 text of them), legacy or v0 message
without address lookup tables, whose wallet signature slot is empty. Other signers may sign before
or after the wallet; they are listed in `details["co_signers"]` (and `co_signers_signed` for slots
already filled, which the node does not verify: the cluster does). The fee is an upper bound: 5000
lamports per signature (transaction and precompile) plus ceil(compute unit limit × price / 10^6),
the limit being the requested one or, when none is set, 200 000 per instruction and 3 000 per
compute-budget instruction, at most 1 400 000 (the runtime, which gives builtins 3 000, charges
less: 11 000 against a bound of 208 000 for one transfer at 10^6 micro-lamports in LiteSVM).
"""

from tholos.chains.solana.build import system_transfer, token_transfer_checked, unsigned
from tholos.chains.solana.chain import NETWORKS, Solana
from tholos.chains.solana.programs import TOKEN_2022_PROGRAM, TOKEN_PROGRAM, UNKNOWN_MINT

SOLANA = Solana()

__all__ = [
    "NETWORKS",
    "SOLANA",
    "TOKEN_2022_PROGRAM",
    "TOKEN_PROGRAM",
    "UNKNOWN_MINT",
    "Solana",
    "system_transfer",
    "token_transfer_checked",
    "unsigned",
]
