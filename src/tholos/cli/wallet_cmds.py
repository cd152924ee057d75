"""`tholos wallets create|list|show|address` (the gateway's /v1/wallets) and `tholos tx build|parse`
(`tx sign` is in tx_sign.py):
an unsigned transaction for a wallet from what the caller supplies (coins, nonce and fees,
blockhash; nothing is fetched from a chain), and the intent the chain package derives from it."""

from __future__ import annotations

import argparse
import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tholos.chains.base import ChainError, WalletRef
from tholos.chains.registry import chain_for
from tholos.chains.wallet_kinds import ADDRESS_TYPES, ref_of
from tholos.cli.payloads import payload_arguments
from tholos.cli.payloads import read_payload as _read_payload
from tholos.cli.payloads import refused as _refused
from tholos.cli.payloads import usage as _usage
from tholos.client import Client

Common = Callable[[argparse.ArgumentParser], None]
MakeClient = Callable[[argparse.Namespace], Client]
# flags that only one chain's `tx build` takes
CHAIN_FLAGS = {
    "bitcoin": ("utxo", "fee", "change_index"),
    "ethereum": ("nonce", "gas", "max_fee", "priority_fee", "index"),
    "solana": ("blockhash", "decimals"),
}


def _wallets(args: argparse.Namespace, client: MakeClient) -> dict[str, Any]:
    c = client(args)
    try:
        if args.action == "create":
            body = {"chain": args.chain, "network": args.network}
            for name in ("key_id", "address_type", "label"):
                if getattr(args, name):
                    body[name] = getattr(args, name)
            return c.post("/v1/wallets", body)  # type: ignore[no-any-return]
        if args.action == "list":
            params = {"chain": args.chain} if args.chain else {}
            wallets: list[Any] = []
            offset: int | None = 0
            total = 0
            while offset is not None:
                page = c.get("/v1/wallets", {**params, "limit": 1000, "offset": offset})
                wallets += page["wallets"]
                total, offset = page["total"], page["next_offset"]
            return {"wallets": wallets, "total": total}
        if args.action == "show":
            return c.get(f"/v1/wallets/{args.wallet_id}")  # type: ignore[no-any-return]
        params = {"change": "true"} if args.change else {}
        return c.get(  # type: ignore[no-any-return]
            f"/v1/wallets/{args.wallet_id}/addresses/{args.index}", params
        )
    finally:
        c.close()


def _wallet_ref(args: argparse.Namespace, client: MakeClient) -> WalletRef:
    c = client(args)
    try:
        return ref_of(c.get(f"/v1/wallets/{args.wallet_id}"))
    finally:
        c.close()


def _utxo(text: str) -> Any:
    from tholos.chains.bitcoin import Utxo

    parts = text.split(":")
    if len(parts) != 4 or not parts[1].isdigit() or not parts[2].isdigit():
        raise _usage(f"--utxo {text[:100]!r}: TXID:VOUT:AMOUNT:PATH (e.g. <txid>:0:50000:m/0/3)")
    return Utxo(txid=parts[0], vout=int(parts[1]), amount=int(parts[2]), path=parts[3])


def _build_bitcoin(ref: WalletRef, args: argparse.Namespace) -> tuple[bytes, bytes, str]:
    from tholos.chains.bitcoin import build_psbt

    if args.token:
        raise _usage("bitcoin has no tokens: drop --token")
    if not args.utxo or args.fee is None:
        raise _usage("bitcoin: give the coins (--utxo TXID:VOUT:AMOUNT:PATH ...) and --fee")
    psbt = build_psbt(
        ref,
        [_utxo(u) for u in args.utxo],
        [(args.to, args.amount)],
        fee=args.fee,
        change_index=args.change_index,
    )
    return psbt, psbt, base64.b64encode(psbt).decode()


def _build_ethereum(ref: WalletRef, args: argparse.Namespace) -> tuple[bytes, bytes, str]:
    from tholos.chains.ethereum import build_erc20_transfer, build_transaction, transaction_payload

    if args.nonce is None:
        raise _usage("ethereum: give --nonce (and --gas, --max-fee, --priority-fee)")
    fees: dict[str, Any] = {
        "chain_id": ref.network,
        "nonce": args.nonce,
        "max_fee_per_gas": args.max_fee or 0,
        "max_priority_fee_per_gas": args.priority_fee or 0,
    }
    if args.gas is not None:
        fees["gas"] = args.gas
    if args.token:
        tx = build_erc20_transfer(token=args.token, to=args.to, amount=args.amount, **fees)
    else:
        tx = build_transaction(to=args.to, value=args.amount, **fees)
    index = args.index or 0
    return tx, (transaction_payload(tx, index) if index else tx), "0x" + tx.hex()


def _build_solana(ref: WalletRef, args: argparse.Namespace) -> tuple[bytes, bytes, str]:
    from solders.hash import Hash
    from solders.pubkey import Pubkey

    from tholos.chains.solana import TOKEN_PROGRAM, system_transfer, token_transfer_checked
    from tholos.chains.solana import unsigned as unsigned_tx

    if not args.blockhash:
        raise _usage("solana: give --blockhash (a recent blockhash, base58)")
    try:
        payer = Pubkey.from_bytes(ref.public_key)
        to = Pubkey.from_string(args.to)
        blockhash = Hash.from_string(args.blockhash)
        mint = Pubkey.from_string(args.token) if args.token else None
    except ValueError as exc:
        raise _usage(f"not base58 of 32 bytes: {exc}") from None
    if mint is None:
        ix = system_transfer(payer, to, args.amount)
    else:
        if args.decimals is None:
            raise _usage("solana --token: give the mint's --decimals")
        from solders.token.associated import get_associated_token_address as account

        ix = token_transfer_checked(
            account(payer, mint, TOKEN_PROGRAM),
            mint,
            account(to, mint, TOKEN_PROGRAM),
            payer,
            args.amount,
            args.decimals,
        )
    wire = unsigned_tx(payer, [ix], blockhash)
    return wire, wire, base64.b64encode(wire).decode()


BUILDERS = {"bitcoin": _build_bitcoin, "ethereum": _build_ethereum, "solana": _build_solana}
ENCODINGS = {"bitcoin": "base64", "ethereum": "hex", "solana": "base64"}


def _tx_build(args: argparse.Namespace, client: MakeClient) -> dict[str, Any]:
    if args.amount < 0:
        raise _usage("--amount is in base units, at least 0")
    ref = _wallet_ref(args, client)
    for chain, flags in CHAIN_FLAGS.items():
        given = [f for f in flags if getattr(args, f) not in (None, [])]
        if chain != ref.chain and given:
            raise _usage(
                f"--{given[0].replace('_', '-')} is for {chain} wallets; "
                f"{args.wallet_id} is a {ref.chain} wallet"
            )
    package = chain_for(ref.chain)
    assert package is not None
    try:
        _, parsed_payload, shown = BUILDERS[ref.chain](ref, args)
        intent = package.parse(ref, parsed_payload).intent
    except ChainError as exc:
        raise _refused(exc) from None
    if not args.json:
        print(shown)
        return {}
    out: dict[str, Any] = {
        "wallet_id": ref.wallet_id,
        "chain": ref.chain,
        "network": ref.network,
        "payload": shown,
        "encoding": ENCODINGS[ref.chain],
        "intent": intent.as_dict(),
    }
    if ref.chain == "ethereum":
        out["index"] = args.index or 0
    return out


def _tx_parse(args: argparse.Namespace, client: MakeClient) -> dict[str, Any]:
    ref = _wallet_ref(args, client)
    chain = chain_for(ref.chain)
    assert chain is not None
    try:
        parsed = chain.parse(ref, _read_payload(args, ref.chain))
    except ChainError as exc:
        raise _refused(exc) from None
    return {
        "wallet_id": ref.wallet_id,
        "intent": parsed.intent.as_dict(),
        "signatures_needed": len(parsed.targets),
    }


def add_parsers(sub: Any, common: Common, client: MakeClient) -> Any:
    """`tholos wallets ...` and `tholos tx ...`; returns the `tx` subcommands (for more)."""
    wallets = sub.add_parser("wallets", help="create, list, show wallets; derive addresses")
    wsub = wallets.add_subparsers(dest="action", required=True)
    p = wsub.add_parser("create", conflict_handler="resolve")
    common(p)
    p.add_argument("--chain", required=True, choices=list(ADDRESS_TYPES))
    p.add_argument(
        "--network",
        required=True,
        help="bitcoin mainnet|testnet|signet|regtest; ethereum a chain id or mainnet|sepolia|"
        "holesky|anvil; solana mainnet-beta|devnet|testnet|localnet",
    )
    # --key here is the wallet's key id; the client TLS key is then --client-key
    p.add_argument("--key", dest="key_id", help="an existing key id (default: create a key)")
    p.add_argument("--client-key", dest="key", type=Path, help="client private key (--gateway)")
    p.add_argument("--address-type", dest="address_type", help="bitcoin p2tr|p2wpkh")
    p.add_argument("--label")
    p = wsub.add_parser("list")
    common(p)
    p.add_argument("--chain", choices=list(ADDRESS_TYPES))
    p = wsub.add_parser("show")
    common(p)
    p.add_argument("wallet_id")
    p = wsub.add_parser("address", help="address INDEX (receive m/0/i, --change m/1/i)")
    common(p)
    p.add_argument("wallet_id")
    p.add_argument("--index", type=int, required=True)
    p.add_argument("--change", action="store_true")
    wallets.set_defaults(fn=lambda a: _wallets(a, client))

    tx = sub.add_parser("tx", help="build, parse or sign (governed) a wallet's transaction")
    tsub = tx.add_subparsers(dest="action", required=True)
    p = tsub.add_parser("build", help="print the unsigned payload (--json: and its intent)")
    common(p)
    p.add_argument("wallet_id")
    p.add_argument("--to", required=True)
    p.add_argument("--amount", type=int, required=True, help="base units (sat, wei, lamports)")
    p.add_argument("--token", help="ERC-20 contract or SPL mint")
    p.add_argument("--utxo", action="append", metavar="TXID:VOUT:AMOUNT:PATH", help="bitcoin")
    p.add_argument("--fee", type=int, help="bitcoin: sat")
    p.add_argument("--change-index", dest="change_index", type=int, help="bitcoin: m/1/i")
    p.add_argument("--nonce", type=int, help="ethereum")
    p.add_argument("--gas", type=int, help="ethereum: gas limit")
    p.add_argument("--max-fee", dest="max_fee", type=int, help="ethereum: wei per gas")
    p.add_argument("--priority-fee", dest="priority_fee", type=int, help="ethereum: wei per gas")
    p.add_argument("--index", type=int, help="ethereum: the sending address m/0/i (default 0)")
    p.add_argument("--blockhash", help="solana: recent blockhash (base58)")
    p.add_argument("--decimals", type=int, help="solana --token: the mint's decimals")
    p.set_defaults(fn=lambda a: _tx_build(a, client))
    p = tsub.add_parser("parse", help="the intent the wallet's chain package derives")
    common(p)
    payload_arguments(p)
    p.set_defaults(fn=lambda a: _tx_parse(a, client))
    from tholos.cli.tx_sign import add_parser as add_sign_parser

    add_sign_parser(tsub, common, client)
    return tsub
