"""`tholos outbox list|show`: the gateway's signed chain transactions and where they are;
`tholos tx nonce W --request-id R`: the Ethereum nonce a signing request to come holds (with
`--replaces TX`: the nonce of a stuck transaction, for its fee bump);
`tholos broadcast run`: the broadcaster, on the gateway's host (it opens the gateway's database),
sending the outbox to the chain backends given (`--ethereum-rpc URL`) until each transaction has
`--confirmations` (`--once`: one pass, for cron jobs and tests)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tholos.client import Client

MakeClient = Callable[[argparse.Namespace], Client]
Common = Callable[[argparse.ArgumentParser], None]
STATES = ("queued", "sent", "confirmed", "replaced", "dropped", "flagged")


def _outbox(args: argparse.Namespace, client: MakeClient) -> Any:
    c = client(args)
    try:
        if args.action == "show":
            return c.get(f"/v1/outbox/{args.tx_hash}")
        params = {
            k: v
            for k, v in (
                ("state", args.state),
                ("chain", args.chain),
                ("request_id", args.request_id),
                ("limit", args.limit),
            )
            if v is not None
        }
        return c.get("/v1/outbox", params)
    finally:
        c.close()


def _nonce(args: argparse.Namespace, client: MakeClient) -> Any:
    body: dict[str, Any] = {"request_id": args.request_id, "index": args.index}
    if args.floor is not None:
        body["floor"] = args.floor
    if args.replaces:
        body["replaces"] = args.replaces
    c = client(args)
    try:
        return c.post(f"/v1/wallets/{args.wallet_id}/nonces", body)
    finally:
        c.close()


def _broadcast(args: argparse.Namespace, cluster_dir: Callable[[argparse.Namespace], Path]) -> Any:
    from tholos.cli import CliError
    from tholos.connectors.base import ConnectorError
    from tholos.gateway.broadcast_service import chain_connectors
    from tholos.gateway.broadcaster import Backoff, Broadcaster
    from tholos.gateway.config import GatewayConfig
    from tholos.gateway.store import GatewayStore

    if args.confirmations < 1:
        raise CliError("--confirmations: at least 1", "usage", 2)
    db = args.db or GatewayConfig.load(cluster_dir(args) / "gateway" / "gateway.json").db
    if not db.exists():
        raise CliError(f"no gateway database at {db}", "usage", 2)
    try:
        connectors = chain_connectors(
            args.ethereum_rpc or [],
            args.confirmations,
            bitcoin=args.bitcoin_rpc or [],
            solana=args.solana_rpc or [],
            bitcoin_cookie=args.bitcoin_cookie,
        )
    except ConnectorError as exc:
        raise CliError(f"chain backend: {exc}", "unavailable", 1) from None
    if not connectors:
        raise CliError(
            "no chain backend: give --ethereum-rpc, --bitcoin-rpc or --solana-rpc URL", "usage", 2
        )
    store = GatewayStore(db)
    try:
        b = Broadcaster(
            store.outbox,
            connectors,
            confirmations=args.confirmations,
            backoff=Backoff(base=args.backoff, poll=args.interval),
        )
        if args.once:
            return {"worked": b.step(), "chains": sorted(f"{c}:{n}" for c, n in connectors)}
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        logging.getLogger("tholos.broadcast").info("broadcasting for %s", sorted(connectors))
        with contextlib.suppress(KeyboardInterrupt):
            b.run(stop, args.interval)
        return {"stopped": time.time()}
    finally:
        store.close()


def add_parsers(
    sub: Any,
    tsub: Any,
    common: Common,
    client: MakeClient,
    cluster_dir: Callable[[argparse.Namespace], Path],
) -> None:
    """`tholos outbox ...`, `tholos broadcast run` and `tholos tx nonce` (under `tx`)."""
    outbox = sub.add_parser("outbox", help="signed chain transactions until confirmed")
    osub = outbox.add_subparsers(dest="action", required=True)
    p = osub.add_parser("list", help="newest first, with state, attempts and confirmations")
    common(p)
    p.add_argument("--state", choices=STATES)
    p.add_argument("--chain", choices=("bitcoin", "ethereum", "solana"))
    p.add_argument("--request-id", dest="request_id")
    p.add_argument("--limit", type=int)
    p = osub.add_parser("show", help="one transaction, with its raw signed bytes")
    common(p)
    p.add_argument("tx_hash")
    outbox.set_defaults(fn=lambda a: _outbox(a, client))

    p = tsub.add_parser("nonce", help="the ethereum nonce a signing request to come holds")
    common(p)
    p.add_argument("wallet_id")
    p.add_argument("--request-id", dest="request_id", required=True)
    p.add_argument("--index", type=int, default=0, help="the sending address m/0/i")
    p.add_argument(
        "--floor",
        type=int,
        help="the lowest nonce to give (a gateway with an Ethereum connector also asks the chain)",
    )
    p.add_argument("--replaces", help="a stuck transaction's hash: its nonce, for a fee bump")
    p.set_defaults(fn=lambda a: _nonce(a, client))

    bc = sub.add_parser("broadcast", help="send the outbox to the chains until confirmed")
    bsub = bc.add_subparsers(dest="action", required=True)
    p = bsub.add_parser("run", help="the broadcaster (on the gateway's host)")
    common(p)
    p.add_argument("--db", type=Path, help="the gateway database (default: D's gateway.db)")
    p.add_argument("--ethereum-rpc", dest="ethereum_rpc", action="append", metavar="URL")
    p.add_argument(
        "--bitcoin-rpc",
        dest="bitcoin_rpc",
        action="append",
        metavar="URL",
        help="Bitcoin Core JSON-RPC (http://user:password@host:8332/ or with --bitcoin-cookie)",
    )
    p.add_argument("--bitcoin-cookie", dest="bitcoin_cookie", type=Path, metavar="PATH")
    p.add_argument("--solana-rpc", dest="solana_rpc", action="append", metavar="URL")
    p.add_argument("--confirmations", type=int, default=1)
    p.add_argument("--interval", type=float, default=2.0, help="seconds between passes")
    p.add_argument("--backoff", type=float, default=1.0, help="first retry delay, seconds")
    p.add_argument("--once", action="store_true", help="one pass, then exit")
    p.set_defaults(fn=lambda a: _broadcast(a, cluster_dir))
