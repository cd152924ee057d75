"""`tholos reserves prove` and `tholos reserves verify`: proof of reserves.

prove: for every wallet (or those named) a proof-of-control request per address, submitted as a
governed request signed by the initiator (`--as USER`; the nodes parse the envelope, show
challenge and address, and sign only if the policy allows the action `proof_of_control`), the
balance of each address read from a connector at a stated height, the Merkle-sum roots of the
liabilities CSV; writes the document (`--out`) and one inclusion file per customer
(`--inclusion-dir`, default OUT.customers/). Connectors: `--eth-rpc URL` (Ethereum JSON-RPC),
`--btc-rpc URL` (Bitcoin Core JSON-RPC; `--btc-cookie PATH` for cookie auth), `--sol-rpc URL`
(Solana JSON-RPC); every chain of the wallets proved needs its connector (name the wallets to
prove with `--wallet`).

verify: checks a document standalone (no cluster): every signature in its chain's format over
the text rebuilt from the challenge, sums, coverage; `--inclusion F` customer files;
`--eth-rpc URL` also re-reads Ethereum balances at their stated heights (`--btc-rpc`, `--sol-rpc`:
Bitcoin and Solana balances, only while the chain is still at the stated height: those reads
have no history).

`tholos report reconcile`: one wallet and asset over a period of heights (or of times), read
from the chain's node (`--eth-rpc`, `--btc-rpc`, `--sol-rpc`) by `reserves.wallet_history`, tied
to the gateway's signed requests (`reserves.reconcile`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tholos.chains.base import ChainError, WalletRef
from tholos.chains.registry import chain_for
from tholos.chains.wallet_kinds import ref_of
from tholos.client import Client
from tholos.connectors.base import Connector, ConnectorError

MakeClient = Callable[[argparse.Namespace], Client]
Common = Callable[..., None]


def _cli() -> Any:
    import tholos.cli as cli

    return cli


def _connectors(args: argparse.Namespace) -> dict[str, Connector]:
    out: dict[str, Connector] = {}
    if args.eth_rpc:
        from tholos.connectors.ethereum import EthereumRpc

        out["ethereum"] = EthereumRpc(args.eth_rpc)
    if args.btc_rpc:
        from tholos.connectors.bitcoin_core import BitcoinCore

        out["bitcoin"] = BitcoinCore(args.btc_rpc, cookie=args.btc_cookie)
    if args.sol_rpc:
        from tholos.connectors.solana_rpc import SolanaRpc

        out["solana"] = SolanaRpc(args.sol_rpc)
    return out


def _connector_arguments(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--eth-rpc", dest="eth_rpc", help=f"Ethereum JSON-RPC URL {what}")
    p.add_argument("--btc-rpc", dest="btc_rpc", help=f"Bitcoin Core JSON-RPC URL {what}")
    p.add_argument("--btc-cookie", dest="btc_cookie", type=Path, help="bitcoind's .cookie file")
    p.add_argument("--sol-rpc", dest="sol_rpc", help=f"Solana JSON-RPC URL {what}")


def _all_wallets(c: Client) -> list[dict[str, Any]]:
    wallets: list[dict[str, Any]] = []
    offset: int | None = 0
    while offset is not None:
        page = c.get("/v1/wallets", {"limit": 1000, "offset": offset})
        wallets += page["wallets"]
        offset = page["next_offset"]
    return wallets


def prove_cmd(args: argparse.Namespace, client: MakeClient) -> dict[str, Any]:
    from tholos.chains import proof_of_control
    from tholos.cli.governance_cmds import _key
    from tholos.cli.tx_sign import PENDING, POLL_SECONDS, REFUSED, submit
    from tholos.reserves.control import ProofError
    from tholos.reserves.liabilities import LiabilityError, build_trees, read_csv
    from tholos.reserves.proof import write_inclusion_proofs
    from tholos.reserves.prover import Signed, Target, prove

    cli = _cli()
    try:
        trees = build_trees(read_csv(args.liabilities.read_text()))
    except (OSError, LiabilityError) as exc:
        raise cli.CliError(f"liabilities: {exc}", "bad_liabilities", 2) from None
    connectors = _connectors(args)
    who, key = _key(args)
    c = client(args)
    try:
        ids = args.wallet or [str(w["wallet_id"]) for w in _all_wallets(c)]
        shown_all = [c.get(f"/v1/wallets/{w}") for w in ids]
        by_id = {str(s["wallet_id"]): s for s in shown_all}
        refs = [ref_of(s) for s in shown_all]
        missing = sorted({r.chain for r in refs} - set(connectors))
        if missing:
            raise cli.CliError(
                f"no connector for {', '.join(missing)} wallets (give --eth-rpc, --btc-rpc, --sol-rpc; "
                "name the wallets to prove with --wallet)",
                "usage",
                2,
            )
        indexes = args.index or [0]
        targets = [Target(r, i) for r in refs for i in (indexes if r.chain != "solana" else [0])]

        # Every request first, so that approvers (where the policy wants them) see them all
        # at once; then each is awaited in turn.
        submitted: dict[tuple[str, bytes], str] = {}
        for t in targets:
            chain = chain_for(t.wallet.chain)
            assert chain is not None
            payload = proof_of_control.envelope(args.challenge, t.index, change=t.change)
            try:
                parsed = chain.parse(t.wallet, payload)
            except ChainError as exc:
                raise cli.CliError(f"{t.wallet.wallet_id}: {exc}", "refused") from None
            state = submit(
                c, by_id[t.wallet.wallet_id], parsed, payload, who, key, "proof of reserves",
                args.expires_in,
            )  # fmt: skip
            submitted[(t.wallet.wallet_id, payload)] = str(state["request_id"])
        deadline = time.monotonic() + args.wait

        async def sign(ref: WalletRef, payload: bytes) -> Signed:
            rid = submitted[(ref.wallet_id, payload)]
            state = c.get(f"/v1/signing-requests/{rid}")
            while state["status"] in PENDING and time.monotonic() < deadline:
                time.sleep(POLL_SECONDS)
                state = c.get(f"/v1/signing-requests/{rid}")
            if state["status"] != "signed":
                why = state.get("error") or json.dumps(state.get("refusals", {}))
                code = "refused" if state["status"] in REFUSED else "not_signed"
                raise cli.CliError(
                    f"proof of control for {ref.wallet_id}: request {rid} {state['status']}: {why}",
                    code,
                )
            return Signed(rid, state["transaction"])

        try:
            doc = asyncio.run(
                prove(args.challenge, targets, sign, connectors, trees, int(time.time()))
            )
        except (ProofError, ChainError, ConnectorError) as exc:
            raise cli.CliError(str(exc), "proof_failed") from None
    finally:
        c.close()
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    inclusion_dir = args.inclusion_dir or args.out.with_name(args.out.name + ".customers")
    customers = write_inclusion_proofs(trees, inclusion_dir)
    return {
        "out": str(args.out),
        "addresses": len(doc["addresses"]),
        "reserves": doc["reserves"],
        "liabilities": {a: v["total"] for a, v in doc["liabilities"].items()},
        "inclusion_dir": str(inclusion_dir),
        "customers": customers,
    }


def verify_cmd(args: argparse.Namespace) -> dict[str, Any]:
    from tholos.reserves.balances import recheck
    from tholos.reserves.proof import verify

    cli = _cli()
    try:
        doc = json.loads(args.file.read_text())
        files = list(args.inclusion or [])
        if args.inclusion_dir:
            files += sorted(args.inclusion_dir.glob("*.json"))
        bodies = [json.loads(p.read_text()) for p in files]
    except (OSError, ValueError) as exc:
        raise cli.CliError(f"cannot read the proof: {exc}", "usage", 2) from None
    if not isinstance(doc, dict):
        raise cli.CliError("the proof is not a JSON object", "proof_invalid")
    report = verify(doc, bodies)
    report.errors += recheck(doc, _connectors(args))
    out = report.as_dict()
    if not report.ok:
        raise cli.CliError("; ".join(report.errors), "proof_invalid", **out)
    return out


def add_parsers(sub: Any, common: Common, client: MakeClient) -> None:
    """`tholos reserves prove|verify`."""
    reserves = sub.add_parser("reserves", help="proof of reserves: prove, verify")
    rsub = reserves.add_subparsers(dest="action", required=True)
    p = rsub.add_parser("prove", help="sign proofs of control, read balances, build the proof")
    common(p)
    p.add_argument("--challenge", required=True, help="the auditor's challenge (printable ASCII)")
    p.add_argument("--liabilities", required=True, type=Path, help="CSV customer_id,asset,amount")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--inclusion-dir", dest="inclusion_dir", type=Path)
    p.add_argument("--wallet", action="append", help="a wallet id (repeat; default: all)")
    p.add_argument("--index", action="append", type=int, help="address index (repeat; default 0)")
    _connector_arguments(p, "for balances")
    p.add_argument("--as", dest="as_user", help="initiator user id (key file D/users/USER.key)")
    p.add_argument("--key-file", type=Path, help="the initiator's Ed25519 key file (hex seed)")
    p.add_argument("--expires-in", dest="expires_in", type=int, default=3600, help="seconds")
    p.add_argument(
        "--wait", type=float, default=300.0, help="seconds to wait for every signature (approvals)"
    )
    p.set_defaults(fn=lambda a: prove_cmd(a, client))
    p = rsub.add_parser("verify", help="check a proof of reserves standalone")
    common(p, cluster=False)
    p.add_argument("file", type=Path)
    p.add_argument("--inclusion", action="append", type=Path, help="a customer's file (repeat)")
    p.add_argument("--inclusion-dir", dest="inclusion_dir", type=Path)
    _connector_arguments(p, "to re-read balances")
    p.set_defaults(fn=verify_cmd)


def _period(args: argparse.Namespace, connector: Connector) -> tuple[int, int]:
    """(from, to) heights: given, or mapped from --from-time/--to-time."""
    from tholos.reserves.wallet_history import height_at, parse_time, time_reader

    start, end = getattr(args, "from"), args.to
    if args.from_time is None and args.to_time is None:
        return start, end
    read_time = time_reader(connector)
    tip = connector.height()
    if args.from_time is not None:
        start = height_at(read_time, tip, parse_time(args.from_time))
    if args.to_time is not None:
        end = height_at(read_time, tip, parse_time(args.to_time))
    return start, end


def _relevant(summary: dict[str, Any], asset: str, native: str) -> bool:
    """A request belongs to the report of `asset`: every request of the wallet pays its fee in
    the native asset; a token report wants the requests that move the token."""
    if asset == native:
        return True
    tx = summary.get("intent", {}).get("transaction") or {}
    return any(t.get("asset") == asset for t in tx.get("transfers", []))


def reconcile_cmd(args: argparse.Namespace, client: MakeClient) -> dict[str, Any]:
    from tholos.reserves import wallet_history
    from tholos.reserves.reconcile import SignedRequest, reconcile

    cli = _cli()
    if args.format == "csv" and args.json and not args.out:
        raise cli.CliError("--format csv prints CSV: give --out FILE to use --json", "usage", 2)
    given = (getattr(args, "from") is not None or args.from_time is not None,
             args.to is not None or args.to_time is not None)  # fmt: skip
    if not all(given):
        raise cli.CliError("give the period: --from (or --from-time) and --to (or --to-time)",
                           "usage", 2)  # fmt: skip
    if (
        getattr(args, "from") is not None
        and args.to is not None
        and getattr(args, "from") > args.to
    ):
        raise cli.CliError("--from is after --to", "usage", 2)
    c = client(args)
    try:
        shown = c.get(f"/v1/wallets/{args.wallet}")
        ref = ref_of(shown)
        try:
            asset = wallet_history.asset_name(ref.chain, args.asset)
        except ValueError as exc:
            raise cli.CliError(f"--asset: {exc}", "usage", 2) from None
        connector = _connectors(args).get(ref.chain)
        if connector is None:
            flag = {"ethereum": "--eth-rpc", "bitcoin": "--btc-rpc", "solana": "--sol-rpc"}
            raise cli.CliError(
                f"{ref.chain} history is read from a node: give {flag.get(ref.chain, 'a connector')}",
                "usage",
                2,
            )
        signed = c.get("/v1/signing-requests", {"status": "signed", "limit": 1000})["requests"]
    finally:
        c.close()
    chain = chain_for(ref.chain)
    assert chain is not None
    indexes = args.index or [0]
    if ref.chain == "solana":
        addresses = [chain.address(ref, 0).address]
    elif ref.chain == "bitcoin":
        addresses = [
            chain.address(ref, i, change=k).address for i in indexes for k in (False, True)
        ]
    else:
        addresses = [chain.address(ref, i).address for i in indexes]
    try:
        start, end = _period(args, connector)
    except ValueError as exc:
        raise cli.CliError(str(exc), "usage", 2) from None
    if start > end:
        raise cli.CliError(f"the period starts at {start}, after its end {end}", "usage", 2)
    try:
        h = wallet_history.read(connector, ref.network, addresses, asset, start, end)
    except (ConnectorError, KeyError, TypeError) as exc:
        raise cli.CliError(f"history: {exc}", "unreachable") from None
    on_chain = {m.txid.lower() for m in h.movements}
    native = wallet_history.NATIVE[ref.chain]
    requests = []
    for s in signed:
        intent = s.get("intent", {})
        if intent.get("key_id") != shown["key_id"] or intent.get("chain") != ref.chain:
            continue
        if not _relevant(s, asset, native):
            continue
        q = SignedRequest.from_summary(s, asset)
        created = int(intent.get("created_at", 0))
        if q.txid.lower() in on_chain or (h.times and h.times[0] <= created <= h.times[1]):
            requests.append(q)
    report = reconcile(ref.wallet_id, asset, (start, end), (h.opening, h.closing), h.movements,
                       requests)  # fmt: skip
    out = report.as_dict()
    out["addresses"] = addresses
    out["requests_dated"] = h.times is not None  # else a request never sent cannot be placed
    text = report.as_csv() if args.format == "csv" else json.dumps(out, indent=1) + "\n"
    if args.out:
        args.out.write_text(text)
        return {
            "out": str(args.out),
            "balances": report.balances,
            "lines": len(report.lines),
            "mismatches": out["mismatches"],
        }
    if args.format == "csv":
        print(text, end="")
        return {}
    return out


def add_report_parsers(sub: Any, common: Common, client: MakeClient) -> None:
    """`tholos report reconcile`."""
    report = sub.add_parser("report", help="reports: reconcile")
    rsub = report.add_subparsers(dest="action", required=True)
    p = rsub.add_parser(
        "reconcile", help="a wallet's opening, deposits, withdrawals, fees, closing over blocks"
    )
    common(p)
    p.add_argument("--wallet", required=True, help="wallet id")
    p.add_argument("--from", dest="from", type=int, help="opening height (block, slot)")
    p.add_argument("--to", type=int, help="closing height (block, slot)")
    p.add_argument(
        "--from-time", dest="from_time", help="ISO-8601: opening at the last block by then"
    )
    p.add_argument("--to-time", dest="to_time", help="ISO-8601: closing at the last block by then")
    p.add_argument(
        "--asset",
        help="BTC/ETH/SOL (default: the chain's), an ERC-20 contract (erc20:0x… or 0x…), "
        "an SPL mint (spl:<mint> or the mint)",
    )
    p.add_argument("--format", choices=("json", "csv"), default="json")
    p.add_argument("--out", type=Path, help="write the report here")
    p.add_argument("--index", action="append", type=int, help="address index (repeat; default 0)")
    _connector_arguments(p, "to read history")
    p.set_defaults(fn=lambda a: reconcile_cmd(a, client))
