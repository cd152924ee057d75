"""ERC-20 calldata: `transfer`, `approve`, `transferFrom`, decoded only when the bytes are exactly
their ABI encoding (selector, then one 32-byte word per argument; address words with twelve zero
high bytes). Anything that starts with one of these selectors but is not exactly that is refused,
never shown as an opaque call: a token ignores trailing bytes and dirty high bits, an approver
must not."""

from __future__ import annotations

from dataclasses import dataclass

from tholos.chains.base import ChainError
from tholos.chains.ethereum.wallet import checksum_address

TRANSFER = bytes.fromhex("a9059cbb")  # transfer(address,uint256)
APPROVE = bytes.fromhex("095ea7b3")  # approve(address,uint256)
TRANSFER_FROM = bytes.fromhex("23b872dd")  # transferFrom(address,address,uint256)

# selector -> (action, argument kinds)
ERC20_CALLS: dict[bytes, tuple[str, tuple[str, ...]]] = {
    TRANSFER: ("transfer", ("to", "amount")),
    APPROVE: ("approve", ("spender", "amount")),
    TRANSFER_FROM: ("transfer_from", ("from", "to", "amount")),
}


@dataclass(frozen=True)
class Erc20Call:
    action: str  # transfer | approve | transfer_from
    to: str  # recipient (transfer, transferFrom) or spender (approve), EIP-55
    amount: int
    source: str = ""  # transferFrom's `from`


def decode_erc20(data: bytes) -> Erc20Call | None:
    """The ERC-20 call `data` encodes; None when the selector is not one of the three."""
    if len(data) < 4 or data[:4] not in ERC20_CALLS:
        return None
    action, args = ERC20_CALLS[data[:4]]
    if len(data) != 4 + 32 * len(args):
        raise ChainError(
            f"{action} calldata is {4 + 32 * len(args)} bytes, not {len(data)}", field="data"
        )
    values: dict[str, str | int] = {}
    for i, name in enumerate(args):
        word = data[4 + 32 * i : 4 + 32 * (i + 1)]
        if name == "amount":
            values[name] = int.from_bytes(word, "big")
        elif word[:12] != b"\x00" * 12:
            raise ChainError(f"{action}: dirty high bits in the address word", field=f"data.{name}")
        else:
            values[name] = checksum_address(word[12:])
    amount = values["amount"]
    assert isinstance(amount, int)
    to = values["spender"] if action == "approve" else values["to"]
    assert isinstance(to, str)
    source = values.get("from", "")
    assert isinstance(source, str)
    return Erc20Call(action=action, to=to, amount=amount, source=source)


def encode_erc20(action: str, to: bytes, amount: int, source: bytes | None = None) -> bytes:
    """ABI calldata of an ERC-20 call (for the builder)."""
    selector = {v[0]: k for k, v in ERC20_CALLS.items()}[action]
    words = [to.rjust(32, b"\x00"), amount.to_bytes(32, "big")]
    if action == "transfer_from":
        if source is None:
            raise ChainError("transferFrom needs a source", field="source")
        words.insert(0, source.rjust(32, b"\x00"))
    return selector + b"".join(words)
