"""Governed chain transactions signed by the cluster, end to end: the gateway derives one sign
item per signature the transaction needs ("<request id>#<k>"), every node parses the payload
itself against the approved intent and signs only its own targets, the gateway combines and
finalises. The result is judged by engines nobody here wrote: Bitcoin Core's consensus code
(py-bitcoinkernel, the block connects) and the Solana runtime (LiteSVM executes it).

A hostile gateway (the harness below talks to the nodes directly) that alters the payload or the
targets after approval is refused by every node, naming the field, and no share leaves."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from embit.psbt import PSBT
from embit.transaction import Transaction
from solders.address_lookup_table_account import AddressLookupTableAccount
from solders.hash import Hash
from solders.litesvm import LiteSVM
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata

from tests.gateway.conftest import Cluster, governed_cluster
from tholos.chains.base import WalletRef
from tholos.chains.bitcoin import BITCOIN, Utxo, build_psbt, script_of
from tholos.chains.ethereum import Ethereum, build_erc20_transfer, build_transaction
from tholos.chains.registry import chain_for
from tholos.chains.solana import system_transfer, unsigned
from tholos.cluster.governance_init import DEMO_USERS, make_genesis
from tholos.connectors.regtest_chain import SUBSIDY, Regtest
from tholos.crypto.keys import PublicKeyPackage
from tholos.gateway.requests import GovernedSigning, attach
from tholos.gateway.scheme_protocols import presignatures
from tholos.governance import (
    ApprovalRequirement,
    Intent,
    Match,
    Policy,
    Rule,
    SigningRequest,
    approve,
    new_request,
)
from tholos.governance.transactions import declare
from tholos.rpc import node_pb2 as pb
from tholos.schemes import SCHEMES
from tholos.schemes.wallets import wallet_ref

CLUSTER = "tholos-chain-tx"
SOL = 1_000_000_000
ADDRESS_TYPES = {"bitcoin": "p2tr", "solana": "account", "ethereum": "eoa"}
NETWORKS = {"bitcoin": "regtest", "solana": "localnet", "ethereum": "31337"}
TOKEN = "0x1f9840a85d5aF5bf1D1762F925BDADdC4201F984"
ALICE = "0x3535353535353535353535353535353535353535"
MALLORY = "0x000000000000000000000000000000000000dEaD"
GWEI = 10**9
FEES = {"max_fee_per_gas": 30 * GWEI, "max_priority_fee_per_gas": 2 * GWEI}
ELSEWHERE = b"\x51"  # OP_TRUE: coinbases nobody here spends
BTC_FEE = 2_000


def chain_policy() -> Policy:
    return Policy(
        rules=(
            Rule(
                rule_id="chains",
                match=Match(chains=("bitcoin", "solana", "ethereum")),
                max_fee=10**16,
                approvals=(ApprovalRequirement(group="treasury", count=1),),
            ),
        )
    )


@dataclass
class Governed:
    cluster: Cluster
    users: dict[str, Ed25519PrivateKey]
    signing: GovernedSigning

    async def wallet(self, scheme: str, chain: str, address_type: str = "") -> WalletRef:
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
            address_type=address_type or ADDRESS_TYPES[chain],
        )

    def request(
        self, wallet: WalletRef, payload: bytes, declared_from: bytes | None = None
    ) -> SigningRequest:
        """An initiator's request: the intent declared from `declared_from` (default: the payload
        itself), as the initiator's client parses it."""
        chain = chain_for(wallet.chain)
        assert chain is not None
        derived = chain.parse(wallet, payload if declared_from is None else declared_from).intent
        now = int(time.time())
        intent = Intent(
            request_id=f"req-{wallet.chain}-{time.monotonic_ns()}",
            initiator="initiator",
            key_id=wallet.wallet_id,
            chain=wallet.chain,
            created_at=now - 5,
            expires_at=now + 600,
            transaction=declare(derived, wallet.address_type),
        )
        return new_request(CLUSTER, intent, payload, self.users["initiator"])

    def approvals(self, req: SigningRequest) -> list[Any]:
        return [approve(req, "approver-1", self.users["approver-1"])]


@pytest_asyncio.fixture
async def governed(tmp_path: Path) -> AsyncIterator[Governed]:
    """4 nodes (t=2) enforcing a policy for bitcoin and solana: one treasury approval."""
    users = {name: Ed25519PrivateKey.generate() for name in DEMO_USERS}
    genesis = make_genesis(CLUSTER, users, chain_policy())
    async with governed_cluster(tmp_path / "c", genesis, CLUSTER) as c:
        yield Governed(c, users, attach(c.gateway, None))


# -- bitcoin ------------------------------------------------------------------------------------
def _funded(tmp_path: Path, wallet: WalletRef) -> tuple[Regtest, list[Utxo]]:
    """Coinbases of blocks 1 and 2 to the wallet's m/0/0 and m/0/1, mature at height 101."""
    chain = Regtest(tmp_path / "regtest")
    coins = []
    for i in range(2):
        script = script_of(BITCOIN.address(wallet, i).address, "regtest")
        cb = chain.mine(script)
        coins.append(Utxo(cb.txid().hex(), 0, SUBSIDY, f"m/0/{i}", previous_tx=cb.serialize()))
    for _ in range(99):
        chain.mine(ELSEWHERE)
    return chain, coins


def _mutate(raw: bytes, change: Callable[[Any], None]) -> bytes:
    psbt = PSBT.parse(raw)
    change(psbt)
    return bytes(psbt.serialize())


def _psbt(wallet: WalletRef, coins: list[Utxo], amount: int = 30 * 10**8, **kw: Any) -> bytes:
    dest = BITCOIN.address(wallet, 5).address  # another address of the same wallet: not change
    return build_psbt(wallet, coins, [(dest, amount)], fee=BTC_FEE, change_index=0, **kw)


@pytest.mark.asyncio
async def test_a_two_input_taproot_spend_signed_by_the_cluster_connects(
    governed: Governed, tmp_path: Path
) -> None:
    wallet = await governed.wallet("bip340", "bitcoin")
    chain, coins = _funded(tmp_path, wallet)
    psbt = _psbt(wallet, coins)
    req = governed.request(wallet, psbt)
    assert len(BITCOIN.parse(wallet, psbt).targets) == 2
    (t,) = await governed.signing.create([(req, governed.approvals(req))])
    assert t.status == "signed", t.summary()
    raw = bytes.fromhex(t.transaction["raw"])
    tx = Transaction.parse(raw)
    assert len(tx.vin) == 2 and len(tx.vout) == 2
    assert tx.txid().hex() == t.transaction["txid"] and t.transaction["psbt"]
    block, _ = chain.block(ELSEWHERE, [tx], BTC_FEE)
    assert chain.submit(block) and chain.height == 102
    # The request's stored form carries the result and the intent the nodes derived.
    summary = governed.signing.get(req.intent.request_id).summary()
    assert summary["transaction"]["txid"] == tx.txid().hex()
    assert summary["intent"]["transaction"]["fee"] == BTC_FEE


@pytest.mark.asyncio
@pytest.mark.parametrize("inputs", [1, 2])
async def test_a_p2wpkh_spend_signed_by_threshold_ecdsa_connects(
    governed: Governed, tmp_path: Path, inputs: int
) -> None:
    """One presignature and one ECDSA signature per input, all in one batch to the signers."""
    wallet = await governed.wallet("ecdsa", "bitcoin", "p2wpkh")
    chain, coins = _funded(tmp_path, wallet)
    req = governed.request(wallet, _psbt(wallet, coins[:inputs]))
    (t,) = await governed.signing.create([(req, governed.approvals(req))])
    assert t.status == "signed", t.summary()
    tx = Transaction.parse(bytes.fromhex(t.transaction["raw"]))
    block, _ = chain.block(ELSEWHERE, [tx], BTC_FEE)
    assert chain.submit(block) and chain.height == 102


@pytest.mark.asyncio
async def test_a_lie_the_node_cannot_see_makes_a_transaction_the_chain_refuses(
    governed: Governed, tmp_path: Path
) -> None:
    """An input amount 1 sat too high, with no previous transaction to check it against: the
    node derives and signs what it is told, and BIP341 commits every input's amount, so the
    engine refuses the spend; the honest spend of the same coins connects."""
    wallet = await governed.wallet("bip340", "bitcoin")
    chain, coins = _funded(tmp_path, wallet)
    bare = [replace(c, previous_tx=None) for c in coins]
    bare[0] = replace(bare[0], amount=bare[0].amount + 1)
    req = governed.request(wallet, _psbt(wallet, bare))
    (t,) = await governed.signing.create([(req, governed.approvals(req))])
    assert t.status == "signed", t.summary()
    block, _ = chain.block(ELSEWHERE, [Transaction.parse(bytes.fromhex(t.transaction["raw"]))], 0)
    assert not chain.submit(block) and chain.height == 101
    honest = governed.request(wallet, _psbt(wallet, coins))
    (h,) = await governed.signing.create([(honest, governed.approvals(honest))])
    block, _ = chain.block(
        ELSEWHERE, [Transaction.parse(bytes.fromhex(h.transaction["raw"]))], BTC_FEE
    )
    assert chain.submit(block) and chain.height == 102


# -- solana -------------------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_a_solana_transfer_signed_by_the_cluster_executes(governed: Governed) -> None:
    wallet = await governed.wallet("ed25519", "solana")
    svm = LiteSVM()
    me, to = Pubkey.from_bytes(wallet.public_key), Pubkey.new_unique()
    svm.airdrop(me, 2 * SOL)
    payload = unsigned(me, [system_transfer(me, to, 1_234_567)], svm.latest_blockhash())
    req = governed.request(wallet, payload)
    (t,) = await governed.signing.create([(req, governed.approvals(req))])
    assert t.status == "signed", t.summary()
    assert t.transaction["encoding"] == "base64"
    import base64

    raw = base64.b64decode(t.transaction["raw"])
    result = svm.send_transaction(VersionedTransaction.from_bytes(raw))
    assert not isinstance(result, FailedTransactionMetadata), result
    assert svm.get_balance(to) == 1_234_567


# -- a hostile gateway ----------------------------------------------------------------------------
Unit = tuple[str, bytes, str, bool]  # item id, message, path, taproot


async def hostile_sign(g: Governed, req: SigningRequest, units: list[Unit]) -> list[pb.SignResult]:
    """Send `units` of an approved `req` to every node as sign items (real commitments of nodes
    1 and 2); every result of every node."""
    gw = g.cluster.gateway
    row = gw.key(req.intent.key_id)
    comms: dict[int, list[Any]] = {1: [], 2: []}
    if row.scheme != "ecdsa":  # ecdsa: the same governed check, before any presignature is used
        pool = SCHEMES[row.scheme].pool
        comms = {s: await gw.nodes.take_commitments(s, pool, len(units)) for s in (1, 2)}
    blob = json.dumps(
        {
            "request": req.model_dump(mode="json"),
            "approvals": [a.model_dump(mode="json") for a in g.approvals(req)],
        }
    ).encode()
    items = [
        pb.SignItem(
            request_id=item_id,
            key_id=row.key_id,
            message=message,
            path="" if path == "m" else path,
            taproot=taproot,
            governance=blob,
            commitments=[
                pb.SignerCommitment(
                    signer=s,
                    nonce_id=comms[s][k].nonce_id,
                    hiding=comms[s][k].hiding,
                    binding=comms[s][k].binding,
                )
                for s in comms
                if comms[s]
            ],
        )
        for k, (item_id, message, path, taproot) in enumerate(units)
    ]
    out: list[pb.SignResult] = []
    for node in g.cluster.services.values():
        out.extend(node.sign_batch(pb.SignBatchRequest(items=items)).results)
    return out


def honest_units(
    wallet: WalletRef, req: SigningRequest, payload: bytes | None = None
) -> list[Unit]:
    chain = chain_for(wallet.chain)
    assert chain is not None
    targets = chain.parse(wallet, req.payload_bytes() if payload is None else payload).targets
    rid = req.intent.request_id
    return [(f"{rid}#{k}", g.message, g.path, g.taproot) for k, g in enumerate(targets)]


def refused_by_all(results: list[pb.SignResult], n_units: int, text: str) -> None:
    assert len(results) == 4 * n_units
    for r in results:
        assert not r.share, r
        assert r.error.startswith("PolicyRefused["), r.error
        assert text in r.error, r.error


@pytest.mark.asyncio
async def test_the_hostile_harness_gets_shares_for_an_honest_request(governed: Governed) -> None:
    """Control: the same harness, honest payload and targets: nodes 1 and 2 give a share each."""
    wallet = await governed.wallet("ed25519", "solana")
    me = Pubkey.from_bytes(wallet.public_key)
    payload = unsigned(me, [system_transfer(me, Pubkey.new_unique(), SOL)], Hash.new_unique())
    req = governed.request(wallet, payload)
    results = await hostile_sign(governed, req, honest_units(wallet, req))
    assert sum(1 for r in results if r.share) == 2


def _solana_cases() -> dict[str, Callable[[Pubkey, Pubkey, Hash], tuple[bytes, bytes, str]]]:
    """(declared-from payload, payload sent, field named)."""
    other = Pubkey.new_unique()

    def tx(me: Pubkey, to: Pubkey, bh: Hash, amount: int = SOL, **kw: Any) -> bytes:
        return unsigned(me, [system_transfer(me, to, amount)], bh, **kw)

    def lookup(me: Pubkey, to: Pubkey, bh: Hash) -> bytes:
        table = AddressLookupTableAccount(Pubkey.new_unique(), [to])
        msg = MessageV0.try_compile(me, [system_transfer(me, to, SOL)], [table], bh)
        return bytes(VersionedTransaction.populate(msg, [Signature_default()]))

    return {
        "destination": lambda me, to, bh: (tx(me, to, bh), tx(me, other, bh), "transfers[0].to"),
        "amount": lambda me, to, bh: (
            tx(me, to, bh),
            tx(me, to, bh, 2 * SOL),
            "transfers[0].amount",
        ),
        "fee": lambda me, to, bh: (
            tx(me, to, bh),
            tx(me, to, bh, compute_unit_limit=200_000, compute_unit_price=10**6),
            "transaction.fee",
        ),
        "lookup-table": lambda me, to, bh: (tx(me, to, bh), lookup(me, to, bh), "lookup"),
    }


def Signature_default() -> Any:
    from solders.signature import Signature

    return Signature.default()


@pytest.mark.asyncio
@pytest.mark.parametrize("case", sorted(_solana_cases()))
async def test_a_solana_payload_altered_after_approval_is_refused_by_every_node(
    governed: Governed, case: str
) -> None:
    wallet = await governed.wallet("ed25519", "solana")
    me, to, bh = Pubkey.from_bytes(wallet.public_key), Pubkey.new_unique(), Hash.new_unique()
    declared_from, payload, field = _solana_cases()[case](me, to, bh)
    req = governed.request(wallet, payload, declared_from=declared_from)
    units = [(f"{req.intent.request_id}#0", b"\x00" * 32, "m", False)]
    if case != "lookup-table":
        units = honest_units(wallet, req)
    refused_by_all(await hostile_sign(governed, req, units), len(units), field)


@pytest.mark.asyncio
async def test_bitcoin_targets_altered_after_approval_are_refused_by_every_node(
    governed: Governed, tmp_path: Path
) -> None:
    wallet = await governed.wallet("bip340", "bitcoin")
    _, coins = _funded(tmp_path, wallet)
    req = governed.request(wallet, _psbt(wallet, coins))
    honest = honest_units(wallet, req)
    rid = req.intent.request_id
    first, second = honest
    cases: dict[str, tuple[list[Unit], str]] = {
        "other message": ([first, (second[0], b"\x07" * 32, *second[2:])], "targets[1].message"),
        "swapped": ([(first[0], *second[1:]), (second[0], *first[1:])], "].message differs"),
        "other path": ([first, (*second[:2], "m/0/9", True)], "targets[1].path"),
        "no tweak": ([(*first[:3], False), second], "targets[0].taproot"),
        "no target index": ([(rid, *first[1:])], "names its target"),
        "no such target": ([(f"{rid}#2", *first[1:])], "needs 2 signatures"),
        "only one of two": ([first], "must ask for all 2 signatures"),
        "padded index": ([(f"{rid}#01", *first[1:]), second], "[binding]"),
        "raw form of one": ([(rid, *first[1:]), second], "names its target"),
    }
    for name, (units, field) in cases.items():
        results = await hostile_sign(governed, req, units)
        try:
            refused_by_all(results, len(units), field)
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from None


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "case",
    ["destination", "amount", "extra output", "fee", "sighash single|anyonecanpay", "lying amount"],
)
async def test_a_bitcoin_payload_altered_after_approval_is_refused_by_every_node(
    governed: Governed, tmp_path: Path, case: str
) -> None:
    wallet = await governed.wallet("bip340", "bitcoin")
    _, coins = _funded(tmp_path, wallet)
    honest = _psbt(wallet, coins)
    other = BITCOIN.address(wallet, 6).address
    payload, field = {
        "destination": (
            build_psbt(wallet, coins, [(other, 30 * 10**8)], fee=BTC_FEE, change_index=0),
            "transfers[0].to",
        ),
        "amount": (_psbt(wallet, coins, amount=31 * 10**8), "amount"),
        "extra output": (
            build_psbt(
                wallet,
                coins,
                [(BITCOIN.address(wallet, 5).address, 30 * 10**8), (other, 10**8)],
                fee=BTC_FEE,
                change_index=0,
            ),
            "transaction.transfers",
        ),
        "fee": (
            build_psbt(
                wallet,
                coins,
                [(BITCOIN.address(wallet, 5).address, 30 * 10**8)],
                fee=BTC_FEE * 50,
                change_index=0,
            ),
            "transaction.change[0].amount",
        ),
        "sighash single|anyonecanpay": (
            _mutate(honest, lambda p: setattr(p.inputs[1], "sighash_type", 0x83)),
            "inputs[1].sighash_type",
        ),
        "lying amount": (
            _psbt(wallet, [replace(c, amount=c.amount + 1) for c in coins]),
            "inputs[0].non_witness_utxo",
        ),
    }[case]
    req = governed.request(wallet, payload, declared_from=honest)
    # The approved targets (what a hostile gateway would ask for) where the payload does not parse.
    units = honest_units(wallet, req, honest)
    refused_by_all(await hostile_sign(governed, req, units), len(units), field)


# -- ethereum -----------------------------------------------------------------------------------
def _erc20(to: str = ALICE, amount: int = 123, chain_id: int = 31337) -> bytes:
    return build_erc20_transfer(
        chain_id=chain_id, nonce=0, token=TOKEN, to=to, amount=amount, **FEES
    )


@pytest.mark.asyncio
async def test_an_erc20_transfer_signed_by_the_cluster_recovers_to_the_wallet(
    governed: Governed,
) -> None:
    from eth_account import Account

    wallet = await governed.wallet("ecdsa", "ethereum")
    payload = _erc20()
    req = governed.request(wallet, payload)
    (t,) = await governed.signing.create([(req, governed.approvals(req))])
    assert t.status == "signed", t.summary()
    raw = bytes.fromhex(t.transaction["raw"].removeprefix("0x"))
    sender = Ethereum().parse(wallet, payload).intent.details.get("from") or (
        Ethereum().address(wallet, 0).address
    )
    assert Account.recover_transaction(raw) == sender
    assert raw[0] == 2  # EIP-1559


def _word(value: str | int) -> str:
    if isinstance(value, str):
        return value[2:].lower().rjust(64, "0")
    return value.to_bytes(32, "big").hex()


@pytest.mark.asyncio
@pytest.mark.parametrize("case", ["recipient in calldata", "approve", "chain id", "amount"])
async def test_an_erc20_payload_altered_after_approval_is_refused_by_every_node(
    governed: Governed, case: str
) -> None:
    wallet = await governed.wallet("ecdsa", "ethereum")
    payload, field = {
        "recipient in calldata": (_erc20(to=MALLORY), "transfers[0].to"),
        "approve": (
            build_transaction(
                chain_id=31337,
                nonce=0,
                to=TOKEN,
                data=bytes.fromhex("095ea7b3" + _word(ALICE) + _word(123)),
                gas=100_000,
                **FEES,
            ),
            "transfers[0].action",
        ),
        "chain id": (_erc20(chain_id=1), "chain_id"),
        "amount": (_erc20(amount=124), "transfers[0].amount"),
    }[case]
    req = governed.request(wallet, payload, declared_from=_erc20())
    units = [(f"{req.intent.request_id}#0", b"\x01" * 32, "m/0/0", False)]
    if case != "chain id":
        units = honest_units(wallet, req)
    refused_by_all(await hostile_sign(governed, req, units), len(units), field)


# -- REST ---------------------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_a_transaction_request_over_rest_returns_the_broadcastable_transaction(
    governed: Governed,
) -> None:
    import httpx

    from tholos.gateway.api import create_app

    wallet = await governed.wallet("ed25519", "solana")
    me = Pubkey.from_bytes(wallet.public_key)
    payload = unsigned(me, [system_transfer(me, Pubkey.new_unique(), SOL)], Hash.new_unique())
    req = governed.request(wallet, payload)
    app = create_app(lambda: governed.cluster.gateway)
    app.state.gateway = governed.cluster.gateway  # started by the fixture (no lifespan here)
    body = {
        "request": req.model_dump(mode="json"),
        "approvals": [a.model_dump(mode="json") for a in governed.approvals(req)],
    }
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        r = await client.post("/v1/signing-requests", json=body)
        assert r.status_code == 201, r.text
        created = r.json()
        shown = (await client.get(f"/v1/signing-requests/{req.intent.request_id}")).json()
    assert created["status"] == "signed", created
    tx = created["transaction"]
    assert tx["encoding"] == "base64" and tx["txid"] and tx["raw"]
    assert shown["intent"]["transaction"]["transfers"][0]["amount"] == SOL
    assert shown["transaction"] == tx


@pytest.mark.asyncio
async def test_a_key_of_another_scheme_than_the_address_type_needs_is_refused(
    governed: Governed, tmp_path: Path
) -> None:
    """The intent names an ed25519 key for a p2tr spend: the gateway refuses it (400) and every
    node, building the wallet from its own key store, refuses it naming the field."""
    from tholos.gateway.service import GatewayError

    taproot = await governed.wallet("bip340", "bitcoin")
    other = await governed.wallet("ed25519", "solana")
    _, coins = _funded(tmp_path, taproot)
    req = governed.request(replace(taproot, wallet_id=other.wallet_id), _psbt(taproot, coins))
    with pytest.raises(GatewayError, match=r"transaction\.address_type"):
        await governed.signing.create([(req, governed.approvals(req))])
    units = honest_units(taproot, req)
    refused_by_all(await hostile_sign(governed, req, units), 2, "transaction.address_type")


@pytest.mark.asyncio
async def test_a_transaction_of_two_signatures_is_one_reservation(tmp_path: Path) -> None:
    """Velocity: at most 2 requests a day. Two 2-input spends are signed (each one journal entry,
    marked signed once on every signer), the third is refused for velocity."""
    from tholos.governance import VelocityLimit

    users = {name: Ed25519PrivateKey.generate() for name in DEMO_USERS}
    (rule,) = chain_policy().rules
    limit = VelocityLimit(limit_id="daily", scope="key", window_seconds=86400, max_count=2)
    genesis = make_genesis(
        CLUSTER, users, Policy(rules=(rule.model_copy(update={"velocity": (limit,)}),))
    )
    async with governed_cluster(tmp_path / "c", genesis, CLUSTER) as c:
        g = Governed(c, users, attach(c.gateway, None))
        wallet = await g.wallet("bip340", "bitcoin")
        _, coins = _funded(tmp_path, wallet)
        done = []
        for amount in (10**8, 2 * 10**8, 3 * 10**8):
            req = g.request(wallet, _psbt(wallet, coins, amount=amount))
            (t,) = await g.signing.create([(req, g.approvals(req))])
            done.append(t)
        assert [t.status for t in done[:2]] == ["signed", "signed"], done[1].summary()
        third = done[2]
        assert third.status == "refused" and not third.transaction, third.summary()
        assert len(third.refusals) == 4, third.summary()
        assert all("daily" in str(v) for v in third.refusals.values()), third.summary()
        for t in done[:2]:
            for s in t.signers:
                gov = c.services[s].governance
                assert gov is not None
                assert gov.journal.statuses([t.request_id]) == {t.request_id: "signed"}


@pytest.mark.asyncio
async def test_an_ecdsa_target_altered_by_the_gateway_is_refused_and_uses_no_presignature(
    governed: Governed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the real ECDSA round path: the gateway's derivation of the target is made to lie
    (another digest); every signer refuses naming the field and no presignature is consumed."""
    from tholos.chains.base import ParsedTransaction
    from tholos.gateway import chain_targets

    wallet = await governed.wallet("ecdsa", "ethereum")
    req = governed.request(wallet, _erc20())
    honest_parse = chain_targets.parse

    def lying(row: Any, request: SigningRequest) -> tuple[WalletRef, ParsedTransaction]:
        w, parsed = honest_parse(row, request)
        (target,) = parsed.targets
        return w, ParsedTransaction(parsed.intent, (replace(target, message=b"\x02" * 32),))

    monkeypatch.setattr(chain_targets, "parse", lying)
    pool = presignatures(governed.cluster.gateway).pool_size(wallet.wallet_id)
    (t,) = await governed.signing.create([(req, governed.approvals(req))])
    assert t.status == "refused" and not t.transaction, t.summary()
    assert t.refusals and all("targets[0].message" in v["reason"] for v in t.refusals.values()), (
        t.summary()
    )
    assert presignatures(governed.cluster.gateway).pool_size(wallet.wallet_id) == pool


@pytest.mark.asyncio
async def test_an_erc20_transfer_signed_by_the_cluster_executes_on_py_evm(
    governed: Governed,
) -> None:
    """The ERC-20 transfer the cluster signs runs on eth-tester's py-evm: the token moves."""
    pytest.importorskip("eth_tester", reason="pip install 'eth-tester[py-evm]==0.14.0b1'")
    from eth_abi import encode as abi_encode

    from tests.chains.ethereum_flow import SUPPLY, _call_data, _uint_call, token_bytecode
    from tests.chains.test_ethereum_evm import PyEvmEngine

    engine = PyEvmEngine()
    network = str(engine.chain_id)
    wallet = replace(await governed.wallet("ecdsa", "ethereum"), network=network)
    sender = Ethereum().address(wallet, 0).address
    engine.fund(sender, 10**19)
    deployed = engine.tester.send_transaction(
        {
            "from": engine.funded,
            "data": "0x" + (token_bytecode() + abi_encode(["uint256"], [SUPPLY])).hex(),
            "gas": 3_000_000,
            **engine.fees(),
        }
    )
    token = str(engine.tester.get_transaction_receipt(deployed)["contract_address"])
    call = _call_data("transfer(address,uint256)", ["address", "uint256"], [sender, 5_000])
    assert engine.transact(engine.funded, token, call).status == 1
    payload = build_erc20_transfer(
        chain_id=engine.chain_id,
        nonce=engine.nonce(sender),
        token=token,
        to=ALICE,
        amount=1_234,
        **engine.fees(),
    )
    req = governed.request(wallet, payload)
    (t,) = await governed.signing.create([(req, governed.approvals(req))])
    assert t.status == "signed", t.summary()
    receipt = engine.send_raw(bytes.fromhex(t.transaction["raw"].removeprefix("0x")))
    assert receipt.status == 1 and receipt.tx_hash.lower() == t.transaction["txid"].lower()
    balance_of: list[Any] = ["balanceOf(address)", ["address"]]
    assert _uint_call(engine, token, *balance_of, [ALICE]) == 1_234
    assert _uint_call(engine, token, *balance_of, [sender]) == 5_000 - 1_234
