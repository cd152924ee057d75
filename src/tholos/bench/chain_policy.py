"""The per-node cost of a chain transaction request, per chain, in one process (`tholos bench`
prints it beside the "with policy" line; `python -m tholos.bench.chain_policy` alone).

Two figures per transaction, mean µs of this process's CPU time per call:
- `parse+compare`: the node's own parse of the payload (sighashes / signing digests included)
  held against the declared intent, `governance.transactions.parse_and_compare`;
- `admit`: everything a node checks before it reserves: the initiator's signature over the
  request digest, `parse+compare`, the policy items and the rules that apply to them
  (`Evaluator.prepare_reservation`, no velocity limit).

Transactions as the issue names them: a Taproot key-path PSBT spending 2 inputs to 1 payment +
change (BIP371 fields, no previous transactions), an EIP-1559 ERC-20 `transfer`, a Solana system
transfer. Keys are random (no DKG: only their public side is used)."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tholos.chains.base import WalletRef

MODE = "node/parse+policy"
CLUSTER = "tholos-bench-chains"
GOAL_US = 200.0
ETH_TOKEN = "0x1f9840a85d5aF5bf1D1762F925BDADdC4201F984"
ETH_TO = "0x3535353535353535353535353535353535353535"


@dataclass(frozen=True)
class Case:
    label: str  # what the transaction is
    wallet: WalletRef
    payload: bytes
    to: str  # the payee, allowed by the bench policy


def _secp_wallet(chain: str, network: str, address_type: str) -> WalletRef:
    import coincurve

    key = coincurve.PrivateKey(os.urandom(32)).public_key.format(compressed=True)
    scheme = "bip340" if address_type == "p2tr" else "ecdsa"
    return WalletRef("bench", chain, network, scheme, address_type, key, os.urandom(32))


def cases() -> list[Case]:
    """One transaction per chain, as a wallet's initiator would submit it."""
    import nacl.signing
    from solders.hash import Hash
    from solders.pubkey import Pubkey

    from tholos.chains.bitcoin import BITCOIN, Utxo, build_psbt
    from tholos.chains.ethereum import build_erc20_transfer
    from tholos.chains.solana import system_transfer, unsigned

    btc = _secp_wallet("bitcoin", "regtest", "p2tr")
    btc_to = BITCOIN.address(_secp_wallet("bitcoin", "regtest", "p2tr"), 0).address
    coins = [Utxo(os.urandom(32).hex(), i, 60_000 + i, f"m/0/{i}") for i in range(2)]
    psbt = build_psbt(btc, coins, [(btc_to, 100_000)], fee=2_000, change_index=0)
    eth = _secp_wallet("ethereum", "31337", "eoa")
    erc20 = build_erc20_transfer(
        chain_id=31337,
        nonce=7,
        token=ETH_TOKEN,
        to=ETH_TO,
        amount=10**18,
        max_fee_per_gas=30 * 10**9,
        max_priority_fee_per_gas=2 * 10**9,
    )
    sol_key = bytes(nacl.signing.SigningKey.generate().verify_key)
    sol = WalletRef("bench", "solana", "localnet", "ed25519", "account", sol_key)
    me, sol_to = Pubkey.from_bytes(sol_key), Pubkey.new_unique()
    wire = unsigned(me, [system_transfer(me, sol_to, 10**6)], Hash.default())
    return [
        Case("bitcoin p2tr psbt 2-in/2-out", btc, psbt, btc_to),
        Case("ethereum eip1559 erc20 transfer", eth, erc20, ETH_TO),
        Case("solana system transfer", sol, wire, str(sol_to)),
    ]


def _cpu_us(fn: Callable[[], object], repeat: int) -> tuple[float, list[float]]:
    """Mean process-CPU µs per call over `repeat` calls, and each call's wall µs."""
    fn()  # warm: imports, caches
    walls = []
    cpu0 = time.process_time()
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        walls.append((time.perf_counter() - t0) * 1e6)
    return (time.process_time() - cpu0) * 1e6 / repeat, walls


def measure(repeat: int = 300) -> list[dict[str, Any]]:
    """One row per chain: CPU µs per `parse+compare` and per `admit` call (see the module doc)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from tholos.cluster.governance_init import DEMO_USERS, make_genesis
    from tholos.governance import ApprovalRequirement, Match, Policy, Rule, load_genesis

    users = {name: Ed25519PrivateKey.generate() for name in DEMO_USERS}
    made = cases()
    policy = Policy(
        rules=(
            Rule(
                rule_id="payouts",
                match=Match(chains=("bitcoin", "ethereum", "solana")),
                allowed_destinations=tuple(c.to for c in made),
                max_amount=10**18,
                max_fee=10**16,
                approvals=(ApprovalRequirement(group="treasury", count=1),),
            ),
        )
    )
    state = load_genesis(make_genesis(CLUSTER, users, policy))
    return [_row(case, state, users["initiator"], repeat) for case in made]


def _row(case: Case, state: Any, initiator: Any, repeat: int) -> dict[str, Any]:
    from tholos.chains.registry import chain_for
    from tholos.governance import Evaluator, Intent, ParserRegistry, Refuse, new_request
    from tholos.governance.transactions import declare, parse_and_compare

    chain = chain_for(case.wallet.chain)
    assert chain is not None
    wallet = case.wallet
    now = int(time.time())
    intent = Intent(
        request_id=f"bench-{wallet.chain}",
        initiator="initiator",
        key_id="bench",
        chain=wallet.chain,
        created_at=now,
        expires_at=now + 3600,
        transaction=declare(chain.parse(wallet, case.payload).intent, wallet.address_type),
    )
    request = new_request(CLUSTER, intent, case.payload, initiator)

    def resolve(_intent: Intent) -> WalletRef:
        return wallet

    evaluator = Evaluator(ParserRegistry(), wallets=resolve)

    def compare() -> None:
        got = parse_and_compare(intent, case.payload, resolve)
        if isinstance(got, Refuse):
            raise RuntimeError(f"bench transaction refused: {got}")

    def admit() -> None:
        got = evaluator.prepare_reservation(state, request, int(time.time()))
        if isinstance(got, Refuse):
            raise RuntimeError(f"bench request refused: {got}")

    compare_us, _ = _cpu_us(compare, repeat)
    admit_us, walls = _cpu_us(admit, repeat)
    q = statistics.quantiles(walls, n=100)
    return {
        "n": "–",
        "t": "–",
        "scheme": case.label,
        "mode": MODE,
        "batch": 1,
        "concurrency": 1,
        "ops_per_s": 1e6 / admit_us,
        "p50_ms": q[49] / 1000,
        "p95_ms": q[94] / 1000,
        "p99_ms": q[98] / 1000,
        "cpu_us_each_node": {"node-1": admit_us},
        "parse_compare_us": compare_us,
        "admit_us": admit_us,
        "goal_us": GOAL_US,
    }


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as a markdown table (µs of CPU per call, one node)."""
    lines = [
        "| transaction | parse+compare µs | admit µs (signature + parse + policy) | goal µs |",
        "|---|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['scheme']} | {r['parse_compare_us']:.0f} | {r['admit_us']:.0f} | "
            f"{r['goal_us']:.0f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(measure()))
