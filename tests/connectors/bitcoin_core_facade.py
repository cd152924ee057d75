"""Bitcoin Core's JSON-RPC, as documented (developer.bitcoin.org / bitcoincore.org RPC docs),
answered from the in-process regtest chain: blocks, UTXOs and validity are libbitcoinkernel's
(through `BitcoinRegtest`); this facade only translates shapes, amounts (BTC decimals) and
error codes. By default it has no mempool: sendrawtransaction mines the transaction into the
next block (the kernel connects it or refuses), like the backend it wraps. With `mempool=True`
a sent transaction whose inputs exist waits, unconfirmed, until `mine()` puts it in a block
(the kernel judges it then; this holding area checks no script, unlike bitcoind's mempool).
With `txindex=False`, getrawtransaction finds no confirmed transaction (as bitcoind without
-txindex)."""

from __future__ import annotations

from typing import Any

from embit.networks import NETWORKS
from embit.script import Script
from embit.transaction import Transaction

from tests.connectors.rpc_facade import RpcFault, RpcServer
from tholos.chains.bitcoin.wallet import script_of
from tholos.connectors.base import ConnectorError
from tholos.connectors.bitcoin_regtest import BitcoinRegtest

NOT_FOUND = "No such mempool or blockchain transaction. Use gettransaction for wallet transactions."


def _btc(sats: int) -> float:
    return sats / 100_000_000


def _address(script: bytes) -> str | None:
    try:
        return str(Script(script).address(NETWORKS["regtest"]))
    except Exception:  # OP_RETURN and other scripts without an address
        return None


class BitcoinCoreFacade:
    def __init__(
        self, backend: BitcoinRegtest, *, txindex: bool = True, mempool: bool = False
    ) -> None:
        self.backend = backend
        self.txindex = txindex
        self.mempool: dict[str, bytes] | None = {} if mempool else None
        self.server = RpcServer(
            {
                "getblockchaininfo": self.getblockchaininfo,
                "getblockcount": lambda: backend.height(),
                "getblockhash": self.getblockhash,
                "getblock": self.getblock,
                "getblockheader": self.getblockheader,
                "scantxoutset": self.scantxoutset,
                "sendrawtransaction": self.sendrawtransaction,
                "getrawtransaction": self.getrawtransaction,
                "gettxout": self.gettxout,
                "estimatesmartfee": lambda target, mode="conservative": {
                    "errors": ["Insufficient data or no feerate found"],
                    "blocks": 0,
                },
            },
            auth=("tholos", "regtest-password"),
        )

    def mine(self, blocks: int = 1, to_address: str | None = None) -> None:
        """Mine `blocks`; with a mempool, its transactions go into the first (one block each)."""
        with self.server.engine():
            waiting = list((self.mempool or {}).values())
            if self.mempool:
                self.mempool.clear()
            for raw in waiting:
                self.backend.broadcast(raw)
                blocks -= 1
            self.backend.mine(max(blocks, 0), to_address)

    # -- the documented methods ---------------------------------------------------------------
    def getblockchaininfo(self) -> dict[str, Any]:
        height = self.backend.height()
        return {"chain": "regtest", "blocks": height, "bestblockhash": self.getblockhash(height)}

    def getblockhash(self, height: int) -> str:
        if not 0 <= height <= self.backend.height():
            raise RpcFault(-8, "Block height out of range")
        return self.backend.regtest.hash_at(height)[::-1].hex()

    def _block_txs(self, height: int) -> tuple[Transaction, ...]:
        for h, coinbase, txs in self.backend._blocks:
            if h == height:
                return (coinbase, *txs)
        raise RpcFault(-1, f"block {height} was not mined through this facade")

    def _height_of(self, blockhash: str) -> int:
        for height in range(self.backend.height() + 1):
            if self.getblockhash(height) == blockhash:
                return height
        raise RpcFault(-5, "Block not found")

    def _time(self, height: int) -> int:
        entry = self.backend.regtest.chainman.get_active_chain().block_tree_entries[height]
        return int(entry.block_header.timestamp.timestamp())

    def getblockheader(self, blockhash: str, verbose: bool = True) -> dict[str, Any]:
        height = self._height_of(blockhash)
        return {"hash": blockhash, "height": height, "time": self._time(height)}

    def _prevout(self, txid: str, vout: int) -> dict[str, Any]:
        coin = self.backend._index.outputs[(txid, vout)]
        spk: dict[str, Any] = {"hex": coin.script.hex()}
        if (address := _address(coin.script)) is not None:
            spk["address"] = address
        generated = txid in self.backend._index.coinbases
        return {"generated": generated, "height": coin.height, "value": _btc(coin.amount),
                "scriptPubKey": spk}  # fmt: skip

    def getblock(self, blockhash: str, verbosity: int = 1) -> dict[str, Any]:
        """Verbosity 2 (transactions decoded) and 3 (each input's prevout too, Core 23+)."""
        if verbosity not in (2, 3):
            raise RpcFault(-8, "this facade serves verbosity 2 and 3 only")
        height = self._height_of(blockhash)
        txs = []
        for k, tx in enumerate(self._block_txs(height)):
            vout = []
            for n, out in enumerate(tx.vout):
                script = bytes(out.script_pubkey.data)
                spk: dict[str, Any] = {"hex": script.hex()}
                if (address := _address(script)) is not None:
                    spk["address"] = address
                vout.append({"value": _btc(out.value), "n": n, "scriptPubKey": spk})
            vin: list[dict[str, Any]] = []
            for i in tx.vin:
                if k == 0:
                    vin.append({"coinbase": i.script_sig.data.hex()})
                    continue
                entry: dict[str, Any] = {"txid": i.txid.hex(), "vout": i.vout}
                if verbosity == 3:
                    entry["prevout"] = self._prevout(i.txid.hex(), i.vout)
                vin.append(entry)
            txs.append(
                {"txid": tx.txid().hex(), "hex": tx.serialize().hex(), "vin": vin, "vout": vout}
            )
        head = self.backend.height()
        return {
            "hash": blockhash,
            "height": height,
            "time": self._time(height),
            "confirmations": head - height + 1,
            "tx": txs,
        }

    def scantxoutset(self, action: str, descriptors: list[str]) -> dict[str, Any]:
        if action != "start":
            raise RpcFault(-8, "Invalid action")
        scripts = set()
        for desc in descriptors:
            if not (desc.startswith("addr(") and desc.endswith(")")):
                raise RpcFault(-5, "this facade scans addr() descriptors only")
            scripts.add(script_of(desc[5:-1], "regtest"))
        index = self.backend._index
        unspents = [
            {
                "txid": c.txid,
                "vout": c.vout,
                "scriptPubKey": c.script.hex(),
                "desc": f"addr({_address(c.script)})",
                "amount": _btc(c.amount),
                "coinbase": c.txid in index.coinbases,
                "height": c.height,
            }
            for key, c in sorted(index.outputs.items())
            if c.script in scripts and key not in index.spent
        ]
        total = sum(
            c.amount
            for k, c in index.outputs.items()
            if c.script in scripts and k not in index.spent
        )
        return {
            "success": True,
            "txouts": len(index.outputs) - len(index.spent),
            "height": self.backend.height(),
            "bestblock": self.getblockhash(self.backend.height()),
            "unspents": unspents,
            "total_amount": _btc(total),
        }

    def sendrawtransaction(self, hexstring: str, maxfeerate: float = 0.10) -> str:
        try:
            tx = Transaction.parse(bytes.fromhex(hexstring))
        except Exception:
            raise RpcFault(
                -22, "TX decode failed. Make sure the tx has at least one input."
            ) from None
        txid = tx.txid().hex()
        if txid in self.backend._index.heights:
            raise RpcFault(-27, "Transaction outputs already in utxo set")
        if self.mempool is not None:
            if txid in self.mempool:
                raise RpcFault(-26, "txn-already-in-mempool")
            try:
                self.backend._fee(tx)
            except ConnectorError:
                raise RpcFault(-25, "bad-txns-inputs-missingorspent") from None
            self.mempool[txid] = bytes.fromhex(hexstring)
            return txid
        try:
            return self.backend.broadcast(bytes.fromhex(hexstring))
        except ConnectorError as exc:
            if "unknown or spent" in str(exc):
                raise RpcFault(-25, "bad-txns-inputs-missingorspent") from None
            raise RpcFault(-26, f"mandatory-script-verify-flag-failed ({exc})") from None

    def _tx(self, txid: str) -> tuple[Transaction, int] | None:
        height = self.backend._index.heights.get(txid)
        if height is None:
            return None
        for tx in self._block_txs(height):
            if tx.txid().hex() == txid:
                return tx, height
        return None

    def getrawtransaction(self, txid: str, verbose: bool | int = False) -> Any:
        if self.mempool and txid in self.mempool:
            raw = self.mempool[txid].hex()
            return {"txid": txid, "hex": raw} if verbose else raw
        found = self._tx(txid) if self.txindex else None
        if found is None:
            raise RpcFault(-5, NOT_FOUND)
        tx, height = found
        if not verbose:
            return tx.serialize().hex()
        return {
            "txid": txid,
            "hex": tx.serialize().hex(),
            "blockhash": self.getblockhash(height),
            "confirmations": self.backend.height() - height + 1,
        }

    def gettxout(self, txid: str, n: int, include_mempool: bool = True) -> Any:
        index = self.backend._index
        coin = index.outputs.get((txid, n))
        if coin is None or (txid, n) in index.spent:
            return None
        return {
            "bestblock": self.getblockhash(self.backend.height()),
            "confirmations": self.backend.height() - coin.height + 1,
            "value": _btc(coin.amount),
            "scriptPubKey": {"hex": coin.script.hex(), "address": _address(coin.script)},
            "coinbase": txid in index.coinbases,
        }
