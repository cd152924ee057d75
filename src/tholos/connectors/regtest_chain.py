"""A regtest chain mined in Python and judged by Bitcoin Core's consensus engine (py-bitcoinkernel:
libbitcoinkernel in a wheel, since no `bitcoind` exists in the registries this project reaches).

Blocks are built here (coinbase with the BIP34 height, witness commitment when a block carries
witness transactions, merkle root, proof of work at regtest difficulty); only libbitcoinkernel
decides whether they connect. An invalid block is silently not connected: callers compare heights.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pbk
from embit.script import Script, Witness
from embit.transaction import Transaction, TransactionInput, TransactionOutput

REGTEST_BITS = 0x207FFFFF
REGTEST_GENESIS_TIME = 1296688602
SUBSIDY = 50 * 100_000_000


def _sha256d(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def _merkle(leaves: list[bytes]) -> bytes:
    level = list(leaves)
    while len(level) > 1:
        if len(level) % 2:
            level.append(level[-1])
        level = [_sha256d(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def _height_push(height: int) -> bytes:
    """BIP34: the height as the first push of the coinbase scriptSig, as `CScript() << height`."""
    if 1 <= height <= 16:
        return bytes([0x50 + height])
    n = height.to_bytes((height.bit_length() + 8) // 8, "little")  # room for the sign bit
    return bytes([len(n)]) + n


@dataclass
class Regtest:
    """A chainstate in `datadir` and the blocks this helper mined on it."""

    datadir: Path
    chainman: pbk.ChainstateManager = field(init=False)
    tip_hash: bytes = field(init=False)  # internal byte order
    time: int = REGTEST_GENESIS_TIME

    def __post_init__(self) -> None:
        self.chainman = pbk.load_chainman(self.datadir, pbk.ChainType.REGTEST)
        tip = self.chainman.get_active_chain()
        entry = tip.block_tree_entries[tip.height]
        self.tip_hash = bytes(entry.block_hash)

    @property
    def height(self) -> int:
        return int(self.chainman.get_active_chain().height)

    def coinbase(
        self, height: int, script: bytes, txs: Sequence[Transaction], fees: int
    ) -> Transaction:
        vin = TransactionInput(
            b"\x00" * 32, 0xFFFFFFFF, script_sig=Script(_height_push(height) + b"\x01\x00")
        )
        outs = [TransactionOutput(SUBSIDY + fees, Script(script))]
        if any(tx.is_segwit for tx in txs):
            wtxids = [b"\x00" * 32] + [_sha256d(tx.serialize()) for tx in txs]
            commitment = _sha256d(_merkle(wtxids) + b"\x00" * 32)
            outs.append(TransactionOutput(0, Script(b"\x6a\x24\xaa\x21\xa9\xed" + commitment)))
            vin.witness = Witness([b"\x00" * 32])
        return Transaction(version=2, vin=[vin], vout=outs, locktime=0)

    def block(
        self, script: bytes, txs: Sequence[Transaction] = (), fees: int = 0
    ) -> tuple[bytes, Transaction]:
        """A block on the current tip paying the coinbase to `script` (not submitted), and its
        coinbase."""
        return self._block_on(self.tip_hash, self.height + 1, script, txs, fees)

    def hash_at(self, height: int) -> bytes:
        """The hash (internal byte order) of the active chain's block at `height`."""
        return bytes(self.chainman.get_active_chain().block_tree_entries[height].block_hash)

    def reorganise(
        self, depth: int, script: bytes, txs: Sequence[Transaction] = (), fees: int = 0
    ) -> list[Transaction]:
        """Replace the top `depth` blocks by a branch of `depth + 1` blocks mined on the block
        below them (`txs` and their `fees` in its first block); the engine must switch to it (it
        has more work), else this raises. Returns the branch's coinbases."""
        if not 1 <= depth <= self.height:
            raise ValueError(f"depth: 1 to {self.height}")
        fork = self.height - depth
        parent = self.hash_at(fork)
        coinbases = []
        for k in range(depth + 1):
            first = k == 0
            raw, cb = self._block_on(
                parent, fork + k + 1, script, txs if first else (), fees if first else 0
            )
            coinbases.append(cb)
            try:
                self.chainman.process_block(pbk.Block(raw))
            except pbk.ProcessBlockException:
                raise RuntimeError(f"the engine refused block {k} of the new branch") from None
            parent = _sha256d(raw[:80])
        if self.height != fork + depth + 1 or self.hash_at(self.height) != parent:
            raise RuntimeError("the engine did not switch to the new branch")
        self.tip_hash = parent
        return coinbases

    def _block_on(
        self, parent: bytes, height: int, script: bytes, txs: Sequence[Transaction], fees: int
    ) -> tuple[bytes, Transaction]:
        txs = list(txs)
        cb = self.coinbase(height, script, txs, fees)
        all_txs = [cb, *txs]
        root = _merkle([tx.hash() for tx in all_txs])
        self.time += 1
        header = (
            (0x20000000).to_bytes(4, "little")
            + parent
            + root
            + self.time.to_bytes(4, "little")
            + REGTEST_BITS.to_bytes(4, "little")
        )
        target = 0x7FFFFF << (8 * (0x20 - 3))
        nonce = 0
        while int.from_bytes(_sha256d(header + nonce.to_bytes(4, "little"))[::-1], "big") > target:
            nonce += 1
        body = b"".join(tx.serialize() for tx in all_txs)
        return header + nonce.to_bytes(4, "little") + bytes([len(all_txs)]) + body, cb

    def submit(self, raw: bytes) -> bool:
        """Hand the block to the engine; True when the tip moved to it."""
        before = self.height
        try:
            self.chainman.process_block(pbk.Block(raw))
        except pbk.ProcessBlockException:
            return False
        if self.height != before + 1:
            return False
        self.tip_hash = _sha256d(raw[:80])
        return True

    def mine(self, script: bytes, txs: Sequence[Transaction] = (), fees: int = 0) -> Transaction:
        """Mine and connect one block; returns its coinbase."""
        raw, cb = self.block(script, txs, fees)
        assert self.submit(raw), "the engine did not connect a block this helper mined"
        return cb
