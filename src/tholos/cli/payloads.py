"""What `tholos tx parse` and `tx sign` share: the payload file a wallet's chain reads, and the CLI
errors for bad usage and for a transaction the chain package refuses (naming the field)."""

from __future__ import annotations

import argparse
from pathlib import Path

from tholos.chains.base import ChainError


def payload_arguments(p: argparse.ArgumentParser) -> None:
    """WALLET_ID and the payload file by chain (one of --psbt, --eth-tx, --sol-tx), --index."""
    p.add_argument("wallet_id")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--psbt", type=Path, help="bitcoin: PSBT file (binary or base64)")
    what.add_argument("--eth-tx", dest="eth_tx", type=Path, help="ethereum: hex or JSON payload")
    what.add_argument("--sol-tx", dest="sol_tx", type=Path, help="solana: wire tx (raw/base64)")
    p.add_argument("--index", type=int, help="ethereum hex tx: the sending address m/0/i")


def usage(message: str) -> Exception:
    """A usage error (exit 2)."""
    from tholos.cli import EXIT_USAGE, CliError

    return CliError(message, "usage", EXIT_USAGE)


def refused(exc: ChainError) -> Exception:
    """The chain package's refusal, with the field it names."""
    from tholos.cli import CliError

    return CliError(str(exc), "invalid_transaction", field=exc.field)


def read_payload(args: argparse.Namespace, chain: str) -> bytes:
    """The payload in the file given by the chain's flag (ethereum: hex, or a JSON payload;
    `--index I` sends from m/0/I)."""
    given = {"bitcoin": args.psbt, "ethereum": args.eth_tx, "solana": args.sol_tx}
    flag = {"bitcoin": "--psbt", "ethereum": "--eth-tx", "solana": "--sol-tx"}
    path: Path | None = given[chain]
    if path is None:
        raise usage(f"a {chain} wallet parses {flag[chain]} FILE")
    raw = path.read_bytes()
    if chain == "ethereum":
        text = raw.strip()
        if text[:1] == b"{":
            return text
        try:
            tx = bytes.fromhex(text.decode("ascii").removeprefix("0x"))
        except (UnicodeDecodeError, ValueError):
            raise usage(f"{path}: not a hex transaction nor a JSON payload") from None
        if args.index:
            from tholos.chains.ethereum import transaction_payload

            return transaction_payload(tx, args.index)
        return tx
    return raw
