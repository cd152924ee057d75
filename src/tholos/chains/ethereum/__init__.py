"""Ethereum (and EVM chains by chain id) on threshold ECDSA wallets; pure, no I/O.

Wallet layout: the wallet's xpub is the ecdsa key's root node (depth 0); address i is the EIP-55
checksummed Keccak-256 address of the BIP32 child `m/0/i`, derived from the public side only
(no change chain). `network` is the chain id in decimal; `normalise_network` maps mainnet=1,
sepolia=11155111, holesky=17000, anvil/devnet=31337 to it when a wallet is created.

Payloads (see `payload`): the bare unsigned transaction bytes (signed by address 0), or a JSON
envelope naming the address index and carrying a transaction, EIP-712 typed data or an EIP-191
personal message. `parse` derives the intent from those bytes alone:
- native value: `Transfer("ETH", to, value)` (also shown for a zero-value call without data);
- ERC-20 `transfer` / `approve` / `transferFrom` calldata, exactly ABI-encoded:
  `Transfer("erc20:<contract>", recipient or spender, amount, action, source=from)`;
- other calldata: `ContractCall(contract, selector, value)` (value sent is also a Transfer);
- an empty `to` (contract creation): `Transfer("ETH", <the address it deploys to, from the sender
  and nonce>, value, action="contract_creation")`, with the init code's hash in details;
- fee: the most it can pay, gas x maxFeePerGas (EIP-1559) or gas x gasPrice, in ETH (wei);
- typed data: kind "typed_data", domain and primary type in details; an EIP-2612 Permit is
  `Transfer("erc20:<verifyingContract>", spender, value, action="permit")`;
- personal message: kind "message", the message in details.
One signing target: Keccak-256 of the signing payload (or the EIP-712 / EIP-191 digest), at the
signing address's path `m/0/index`. `finalize` takes r||s||v (v 0/1 or 27/28) or r||s, checks it
recovers to that address, and returns the raw signed transaction (txid = its Keccak-256) or the
65-byte r||s||v (v = 27/28) signature for typed data and messages.
"""

from tholos.chains.ethereum.builder import build_erc20_transfer, build_transaction
from tholos.chains.ethereum.chain import Ethereum, created_address, recover_signature
from tholos.chains.ethereum.payload import (
    message_payload,
    transaction_payload,
    typed_data_payload,
)
from tholos.chains.ethereum.wallet import (
    checksum_address,
    keccak256,
    normalise_network,
)

ETHEREUM = Ethereum()
"""The package object the chain registry names (tholos.chains.registry)."""

__all__ = [
    "ETHEREUM",
    "Ethereum",
    "build_erc20_transfer",
    "build_transaction",
    "checksum_address",
    "created_address",
    "keccak256",
    "message_payload",
    "normalise_network",
    "recover_signature",
    "transaction_payload",
    "typed_data_payload",
]
