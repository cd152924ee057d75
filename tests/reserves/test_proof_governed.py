"""A proof of reserves made by a governed cluster and checked by an auditor's own tools.

Four nodes (t=2) each parse every proof-of-control envelope themselves and judge it by policy
(a rule allowing the action `proof_of_control`); balances come from real engines (Bitcoin
Core's consensus code via py-bitcoinkernel, anvil over JSON-RPC, LiteSVM); the document is
checked by `tholos.reserves.proof.verify` and by `auditor_check.py`, which imports no tholos
code (eth-account, embit, PyNaCl and the standard library only)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.engines import running_anvil
from tests.gateway.conftest import Cluster, governed_cluster
from tholos.chains import proof_of_control
from tholos.chains.base import WalletRef
from tholos.chains.registry import chain_for
from tholos.cluster.governance_init import DEMO_USERS, make_genesis
from tholos.connectors.bitcoin_regtest import BitcoinRegtest
from tholos.connectors.ethereum import EthereumRpc
from tholos.connectors.solana_litesvm import SolanaLiteSvm
from tholos.crypto.keys import PublicKeyPackage
from tholos.gateway.requests import GovernedSigning, attach
from tholos.gateway.scheme_protocols import presignatures
from tholos.governance import Intent, Match, Policy, Rule, new_request
from tholos.governance.transactions import declare
from tholos.reserves import liabilities
from tholos.reserves.balances import recheck
from tholos.reserves.proof import verify, write_inclusion_proofs
from tholos.reserves.prover import Signed, Target, prove

pytestmark = pytest.mark.slow  # starts anvil

CLUSTER = "tholos-reserves"
AUDITOR = Path(__file__).with_name("auditor_check.py")
CHALLENGE = "auditor-42 2026-12-03T13:00Z 9c1d"
NETWORKS = {"bitcoin": "regtest", "solana": "localnet", "ethereum": "31337"}
CSV = (
    "customer_id,asset,amount\nalice,BTC,3000000000\nbob,BTC,1000000000\ncarol,ETH,5\nalice,SOL,7\n"
)


def reserves_policy(allow_proofs: bool) -> Policy:
    rules = [Rule(rule_id="transfers", match=Match(chains=("bitcoin",)))]
    if allow_proofs:
        rules.append(Rule(rule_id="reserves", match=Match(actions=("proof_of_control",))))
    return Policy(rules=tuple(rules))


class Governed:
    def __init__(self, cluster: Cluster, users: dict[str, Ed25519PrivateKey]) -> None:
        self.cluster = cluster
        self.users = users
        self.signing: GovernedSigning = attach(cluster.gateway, None)

    async def wallet(self, scheme: str, chain: str, address_type: str) -> WalletRef:
        from tholos.schemes import SCHEMES
        from tholos.schemes.wallets import wallet_ref

        (row,) = await self.cluster.gateway.create_keys(scheme)
        if scheme == "ecdsa":
            rounds = presignatures(self.cluster.gateway)
            rounds.auto_refill = False
            assert await rounds.presign(row.key_id, 2) == 2
        return wallet_ref(
            row.key_id,
            SCHEMES[scheme],
            PublicKeyPackage.from_dict(row.package),
            row.meta,
            chain=chain,
            network=NETWORKS[chain],
            address_type=address_type,
        )

    async def sign(self, wallet: WalletRef, payload: bytes) -> Signed:
        """What `tholos reserves prove` does per address: an initiator's governed request."""
        chain = chain_for(wallet.chain)
        assert chain is not None
        now = int(time.time())
        intent = Intent(
            request_id=f"por-{time.monotonic_ns()}",
            initiator="initiator",
            key_id=wallet.wallet_id,
            chain=wallet.chain,
            created_at=now - 5,
            expires_at=now + 600,
            transaction=declare(chain.parse(wallet, payload).intent, wallet.address_type),
        )
        req = new_request(CLUSTER, intent, payload, self.users["initiator"])
        (t,) = await self.signing.create([(req, [])])
        assert t.status == "signed", t.summary()
        return Signed(intent.request_id, t.transaction)


async def governed_with(tmp: Path, policy: Policy) -> AsyncIterator[Governed]:
    users = {name: Ed25519PrivateKey.generate() for name in DEMO_USERS}
    genesis = make_genesis(CLUSTER, users, policy)
    async with governed_cluster(tmp, genesis, CLUSTER) as c:
        yield Governed(c, users)


@pytest_asyncio.fixture
async def governed(tmp_path: Path) -> AsyncIterator[Governed]:
    async for g in governed_with(tmp_path / "c", reserves_policy(True)):
        yield g


@pytest.fixture(scope="module")
def anvil() -> Iterator[EthereumRpc]:
    with running_anvil() as url:
        yield EthereumRpc(url)


def _audit(proof: Path, *customers: Path) -> subprocess.CompletedProcess[str]:
    """The auditor's script in a fresh interpreter where importing tholos fails."""
    code = (
        "import runpy, sys; sys.modules['tholos'] = None; "
        f"sys.argv = {[str(AUDITOR), str(proof), *map(str, customers)]!r}; "
        f"runpy.run_path({str(AUDITOR)!r}, run_name='__main__')"
    )
    return subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=300
    )


@pytest.mark.asyncio
async def test_a_proof_of_reserves_signed_by_the_cluster_passes_an_independent_audit(
    governed: Governed, anvil: EthereumRpc, tmp_path: Path
) -> None:
    wallets = [
        await governed.wallet("bip340", "bitcoin", "p2tr"),
        await governed.wallet("ecdsa", "bitcoin", "p2wpkh"),
        await governed.wallet("ecdsa", "ethereum", "eoa"),
        await governed.wallet("ed25519", "solana", "account"),
    ]
    btc = BitcoinRegtest(tmp_path / "regtest")
    sol = SolanaLiteSvm()
    address = {w.wallet_id: chain_for(w.chain).address(w, 0).address for w in wallets}  # type: ignore[union-attr]
    btc.mine(1, address[wallets[0].wallet_id])  # 50 BTC to the p2tr wallet, mature after 100
    btc.mine(1, address[wallets[1].wallet_id])
    btc.mine(100)
    anvil.call("anvil_setBalance", address[wallets[2].wallet_id], hex(7 * 10**18))
    sol.fund(address[wallets[3].wallet_id], 2 * 10**9)
    trees = liabilities.build_trees(liabilities.read_csv(CSV))
    doc = await prove(
        CHALLENGE,
        [Target(w) for w in wallets],
        governed.sign,
        {"bitcoin": btc, "ethereum": anvil, "solana": sol},
        trees,
        int(time.time()),
    )
    assert doc["reserves"] == {"BTC": 100 * 10**8, "ETH": 7 * 10**18, "SOL": 2 * 10**9}
    assert [a["format"] for a in doc["addresses"]] == [
        "bip322-simple",
        "bip322-simple",
        "eip191",
        "solana-offchain-v0",
    ]
    assert doc["addresses"][0]["balance"]["height"] == 102
    proof = tmp_path / "proof.json"
    proof.write_text(json.dumps(doc))
    customers = tmp_path / "customers"
    assert write_inclusion_proofs(trees, customers) == 3
    files = sorted(customers.iterdir())
    bodies = [json.loads(p.read_text()) for p in files]
    report = verify(doc, bodies)
    assert report.ok, report.errors
    assert len(report.inclusion) == 4 and report.assets["BTC"]["covered"]
    audited = _audit(proof, *files)
    assert audited.returncode == 0, audited.stdout + audited.stderr
    assert json.loads(audited.stdout) == {"ok": True, "addresses": 4, "failures": []}
    assert recheck(doc, {"bitcoin": btc, "ethereum": anvil, "solana": sol}) == []
    anvil.call("anvil_mine", "0x1")  # the balance at the stated height is still what it was
    anvil.call("anvil_setBalance", address[wallets[2].wallet_id], hex(1))
    assert recheck(doc, {"ethereum": anvil}) == []

    # Tampering of any part is found by both checks.
    def tampered(change: Any) -> tuple[dict[str, Any], Path]:
        copy = json.loads(json.dumps(doc))
        change(copy)
        path = tmp_path / "tampered.json"
        path.write_text(json.dumps(copy))
        return copy, path

    cases = {
        "another challenge": lambda d: d.update(challenge="auditor-43"),
        "a swapped signature": lambda d: d["addresses"][0].update(
            signature=d["addresses"][1]["signature"]
        ),
        "a higher balance": lambda d: (
            d["addresses"][2]["balance"].update(amount=8 * 10**18),
            d["reserves"].update(ETH=8 * 10**18),
        ),
        "liabilities above reserves": lambda d: d["liabilities"]["SOL"].update(total=3 * 10**9),
    }
    for name, change in cases.items():
        copy, path = tampered(change)
        if name == "a higher balance":  # consistent in itself: found by re-reading the chain
            assert verify(copy).ok and _audit(path).returncode == 0
            (error,) = recheck(copy, {"ethereum": anvil})
            assert "the proof states 8000000000000000000" in error
            continue
        assert not verify(copy).ok, name
        assert _audit(path).returncode == 1, name
    # A customer's proof against another root fails.
    copy, _ = tampered(lambda d: d["liabilities"]["BTC"].update(root="00" * 32))
    assert not verify(copy, bodies).ok


@pytest.mark.asyncio
async def test_a_policy_without_a_proof_rule_refuses_the_envelope(tmp_path: Path) -> None:
    async for g in governed_with(tmp_path / "c", reserves_policy(False)):
        wallet = await g.wallet("ed25519", "solana", "account")
        chain = chain_for("solana")
        assert chain is not None
        payload = proof_of_control.envelope(CHALLENGE)
        now = int(time.time())
        intent = Intent(
            request_id="por-refused",
            initiator="initiator",
            key_id=wallet.wallet_id,
            chain="solana",
            created_at=now - 5,
            expires_at=now + 600,
            transaction=declare(chain.parse(wallet, payload).intent, "account"),
        )
        req = new_request(CLUSTER, intent, payload, g.users["initiator"])
        (t,) = await g.signing.create([(req, [])])
        assert t.status == "refused", t.summary()
        assert "proof_of_control" in json.dumps(t.summary()), t.summary()
