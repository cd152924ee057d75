"""Making a proof of reserves: one proof-of-control request per address, signed by the cluster
through whatever `sign` the caller gives (a governed request in the CLI; the nodes parse the
envelope and show challenge and address to the policy), balances read from connectors, and the
liability trees.

The client-side parse (`chain.parse`) gives the address, path and the text the nodes will sign;
the signature that comes back is checked here against that text before it enters the document.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tholos.chains import proof_of_control
from tholos.chains.base import WalletRef
from tholos.chains.registry import chain_for
from tholos.connectors.base import Connector
from tholos.reserves.balances import balance_at
from tholos.reserves.control import ProofError, check_control, signature_of
from tholos.reserves.liabilities import LiabilityTree
from tholos.reserves.proof import AddressProof, assemble


@dataclass(frozen=True)
class Target:
    """An address to prove: the wallet's receive (or change) address `index`."""

    wallet: WalletRef
    index: int = 0
    change: bool = False


@dataclass(frozen=True)
class Signed:
    """What the cluster returned for one proof-of-control request."""

    request_id: str
    transaction: Mapping[str, Any]  # the request's result: raw, encoding, ...


Sign = Callable[[WalletRef, bytes], Awaitable[Signed]]


async def prove(
    challenge: str,
    targets: Sequence[Target],
    sign: Sign,
    connectors: Mapping[str, Connector],
    trees: Mapping[str, LiabilityTree],
    created_at: int,
) -> dict[str, Any]:
    """The proof document; ProofError naming the address when a step fails."""
    proofs: list[AddressProof] = []
    for target in targets:
        ref = target.wallet
        chain = chain_for(ref.chain)
        connector = connectors.get(ref.chain)
        if chain is None or connector is None:
            raise ProofError(f"wallet {ref.wallet_id}: no connector for {ref.chain}")
        payload = proof_of_control.envelope(challenge, target.index, change=target.change)
        details = chain.parse(ref, payload).intent.details
        address = str(details["address"])
        signed = await sign(ref, payload)
        entry = AddressProof(
            wallet_id=ref.wallet_id,
            chain=ref.chain,
            network=ref.network,
            address=address,
            path=str(details["path"]),
            format=str(details["format"]),
            message=str(details["message_text"]),
            signature=signature_of(ref.chain, signed.transaction),
            request_id=signed.request_id,
            balance=balance_at(connector, address),
        )
        check_control(entry.as_dict(), challenge)
        proofs.append(entry)
    return assemble(challenge, proofs, trees, created_at)
