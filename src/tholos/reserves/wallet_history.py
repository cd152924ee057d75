"""Which history source reads a wallet's asset on its chain, and how a period named by times
maps to heights: the one entry point `tholos report reconcile` uses for every chain."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence

from tholos.connectors.base import Connector, ConnectorError
from tholos.reserves.reconcile import History

NATIVE = {"bitcoin": "BTC", "ethereum": "ETH", "solana": "SOL"}


def asset_name(chain: str, given: str | None) -> str:
    """The asset as intents name it: the chain's native symbol by default, `erc20:<EIP-55
    contract>` for a contract address on Ethereum, `spl:<mint>` for a mint on Solana;
    ValueError naming what is wrong otherwise."""
    native = NATIVE.get(chain)
    if native is None:
        raise ValueError(f"no reconciliation for {chain} wallets")
    text = (given or native).strip()
    if text.upper() == native:
        return native
    if chain == "ethereum":
        from tholos.reserves.erc20_history import asset_of

        return asset_of(text)
    if chain == "solana":
        from solders.pubkey import Pubkey

        mint = text.removeprefix("spl:")
        try:
            Pubkey.from_string(mint)
        except ValueError:
            raise ValueError(f"not an SPL mint address: {mint[:60]!r}") from None
        return f"spl:{mint}"
    raise ValueError(f"bitcoin wallets hold BTC only, not {text[:60]!r}")


def read(
    connector: Connector, network: str, addresses: Sequence[str], asset: str, start: int, end: int
) -> History:
    """The history of `asset` for the wallet's `addresses` over (start, end], from the backend
    `connector` talks to."""
    if start > end:
        raise ValueError(f"the period starts at {start}, after its end {end}")
    if connector.chain == "ethereum":
        from tholos.connectors.ethereum import EthereumRpc
        from tholos.reserves import erc20_history, ethereum_history

        assert isinstance(connector, EthereumRpc)
        if asset == "ETH":
            return ethereum_history.history(connector, addresses, start, end)
        return erc20_history.history(connector, addresses, asset[6:], start, end)
    if connector.chain == "bitcoin":
        from tholos.connectors.bitcoin_core import BitcoinCore
        from tholos.connectors.bitcoin_regtest import BitcoinRegtest
        from tholos.reserves import bitcoin_history

        source: bitcoin_history.BlockSource
        if isinstance(connector, BitcoinCore):
            source = bitcoin_history.CoreBlocks(connector, network)
        elif isinstance(connector, BitcoinRegtest):
            source = bitcoin_history.RegtestBlocks(connector)
        else:
            raise ConnectorError(f"no Bitcoin history from {type(connector).__name__}")
        return bitcoin_history.history(source, addresses, start, end)
    if connector.chain == "solana":
        from tholos.reserves import solana_history

        found = solana_history.history(connector, addresses[0], asset, start, end)  # type: ignore[arg-type]
        return History(
            found.movements, found.opening, found.closing, _solana_times(connector, start, end)
        )
    raise ConnectorError(f"no history for chain {connector.chain}")


def _solana_times(connector: Connector, start: int, end: int) -> tuple[int, int] | None:
    """The times of the two slots when the node has them (`getBlockTime`; a skipped slot or
    LiteSVM has none)."""
    call = getattr(connector, "call", None)
    if call is None:
        return None
    try:
        first, last = call("getBlockTime", start), call("getBlockTime", end)
    except ConnectorError:
        return None
    return (int(first), int(last)) if first is not None and last is not None else None


def parse_time(text: str) -> int:
    """ISO-8601 (a zone, or UTC when none) → unix seconds; ValueError naming the text."""
    try:
        when = datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"not an ISO-8601 time: {text[:60]!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return int(when.timestamp())


def height_at(time_of: Callable[[int], int], tip: int, when: int) -> int:
    """The highest height at or below `tip` whose (non-decreasing) time is at or before
    `when`; 0 when even block 1 is later. Binary search: about log2(tip) reads."""
    low, high = 0, tip
    while low < high:
        mid = (low + high + 1) // 2
        if time_of(mid) <= when:
            low = mid
        else:
            high = mid - 1
    return low


def time_reader(connector: Connector) -> Callable[[int], int]:
    """A non-decreasing time per height: Ethereum's block timestamp, Bitcoin's median time
    past (a block's own time may be below its parent's); ValueError for Solana (slots without
    blocks have no time)."""
    if connector.chain == "ethereum":
        from tholos.connectors.ethereum import EthereumRpc
        from tholos.reserves.ethereum_history import block_time

        assert isinstance(connector, EthereumRpc)
        return lambda h: block_time(connector, h)
    if connector.chain == "bitcoin":
        from tholos.connectors.bitcoin_core import BitcoinCore

        if isinstance(connector, BitcoinCore):
            core = connector

            def mtp(h: int) -> int:
                header = core.call("getblockheader", core.call("getblockhash", h))
                return int(header.get("mediantime", header["time"]))

            return mtp
    raise ValueError(f"periods by time need Ethereum or Bitcoin Core, not {connector.chain}")
