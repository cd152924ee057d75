"""A wallet's history of one ERC-20 token from an Ethereum JSON-RPC node, for reconciliation:
the token's `Transfer(address,address,uint256)` logs (`eth_getLogs`) from or to the wallet's
addresses in a range of blocks, and its `balanceOf` at both ends (`eth_call` at a block).

The fees of the transactions moving the tokens are paid in ETH and are lines of the wallet's
ETH report. A token that changes balances without logging a Transfer (rebasing tokens, fee on
transfer taken silently, a mint or burn that logs nothing) shows as an unexplained balance.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tholos.chains.base import ChainError
from tholos.chains.ethereum.wallet import checksum_address, keccak256, parse_address
from tholos.connectors.base import ConnectorError
from tholos.connectors.ethereum import EthereumRpc
from tholos.reserves.ethereum_history import block_time
from tholos.reserves.reconcile import History, Movement

TRANSFER = "0x" + keccak256(b"Transfer(address,address,uint256)").hex()
BALANCE_OF = "0x70a08231"  # balanceOf(address)


def asset_of(token: str) -> str:
    """The asset name intents give the token: `erc20:<EIP-55 contract address>`; ValueError
    when `token` is not a contract address."""
    try:
        return "erc20:" + checksum_address(parse_address(token.removeprefix("erc20:"), "token"))
    except ChainError as exc:
        raise ValueError(f"not an ERC-20 contract address: {token[:60]!r} ({exc})") from None


def _topic(address: str) -> str:
    return "0x" + "00" * 12 + address[2:].lower()


def _address(topic: str) -> str:
    return checksum_address(bytes.fromhex(topic[-40:]))


def _logs(rpc: EthereumRpc, token: str, start: int, end: int, topics: list[Any]) -> list[Any]:
    found = rpc.call(
        "eth_getLogs",
        {"fromBlock": hex(start + 1), "toBlock": hex(end), "address": token, "topics": topics},
    )
    if not isinstance(found, list):
        raise ConnectorError(f"eth_getLogs answered {type(found).__name__}, not a list")
    return [log for log in found if not log.get("removed")]


def movements(
    rpc: EthereumRpc, addresses: Sequence[str], token: str, start: int, end: int
) -> list[Movement]:
    """Transfers of `token` from or to `addresses` in blocks (start, end]."""
    asset = asset_of(token)
    contract = asset[6:]
    watched = {a.lower(): a for a in addresses}
    padded = [_topic(a) for a in addresses]
    seen: dict[tuple[str, str], dict[str, Any]] = {}  # one log once, even when in both queries
    for topics in ([TRANSFER, padded], [TRANSFER, None, padded]):
        for log in _logs(rpc, contract, start, end, topics):
            seen[(str(log["transactionHash"]).lower(), str(log["logIndex"]))] = log
    found: list[Movement] = []
    for log in seen.values():
        if len(log.get("topics", [])) != 3:
            continue  # not the ERC-20 event (an ERC-721 Transfer has a 4th, indexed, topic)
        sender, receiver = _address(log["topics"][1]), _address(log["topics"][2])
        value = int(str(log["data"]), 16) if log.get("data") not in (None, "0x") else 0
        txid, block = str(log["transactionHash"]), int(str(log["blockNumber"]), 16)
        if sender.lower() in watched and value:
            found.append(
                Movement(txid, block, "withdrawal", asset, value, watched[sender.lower()], receiver)
            )
        if receiver.lower() in watched and value:
            found.append(
                Movement(txid, block, "deposit", asset, value, watched[receiver.lower()], sender)
            )
    return found


def balance(rpc: EthereumRpc, addresses: Sequence[str], token: str, height: int) -> int:
    """The wallet's balance of `token` (all `addresses`) at block `height`."""
    contract = asset_of(token)[6:]
    total = 0
    for a in addresses:
        data = BALANCE_OF + _topic(a)[2:]
        result = rpc.call("eth_call", {"to": contract, "data": data}, hex(height))
        total += int(str(result), 16) if result not in (None, "0x") else 0
    return total


def history(
    rpc: EthereumRpc, addresses: Sequence[str], token: str, start: int, end: int
) -> History:
    """Movements, both balances and block times of `token` for the wallet over (start, end]."""
    return History(
        movements(rpc, addresses, token, start, end),
        balance(rpc, addresses, token, start),
        balance(rpc, addresses, token, end),
        (block_time(rpc, start), block_time(rpc, end)),
    )
