"""Solana's JSON-RPC, in the shapes solana.com/docs/rpc documents, answered from LiteSVM (the
Solana runtime in-process, signature verification on): balances, acceptance, fees and balance
changes are LiteSVM's; this facade only translates. What LiteSVM lacks the facade states here:
there are no votes, so a landed transaction is "confirmed" at once and "finalized" 32 slots
later; each accepted transaction lands in the next slot (one warp per transaction, as in
`SolanaLiteSvm`); slots stand in for block heights; the first blockhash stands in for genesis;
requestAirdrop is LiteSVM's airdrop, recorded as a transaction crediting its recipient;
getTokenAccountsByOwner looks among the accounts named by transactions sent through it (LiteSVM
cannot list accounts by owner); getTransaction's pre and post token balances are the token
accounts among the transaction's keys, read from LiteSVM before and after it ran."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from solders.litesvm import LiteSVM
from solders.pubkey import Pubkey
from solders.token.state import Mint, TokenAccount
from solders.transaction import VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata

from tests.connectors.rpc_facade import RpcFault, RpcServer
from tholos.chains.solana import TOKEN_2022_PROGRAM, TOKEN_PROGRAM

FINALITY_SLOTS = 32


@dataclass(frozen=True)
class _Landed:
    slot: int
    keys: tuple[str, ...]
    pre: tuple[int, ...]
    post: tuple[int, ...]
    fee: int
    logs: tuple[str, ...]
    message: dict[str, Any]
    pre_tokens: tuple[dict[str, Any], ...] = ()
    post_tokens: tuple[dict[str, Any], ...] = ()


class SolanaRpcFacade:
    def __init__(self, svm: LiteSVM | None = None) -> None:
        self.svm = svm or LiteSVM()
        self.genesis = str(self.svm.latest_blockhash())
        self.landed: dict[str, _Landed] = {}
        self.order: list[str] = []  # signatures, oldest first
        self.server = RpcServer(
            {
                "getGenesisHash": lambda: self.genesis,
                "getSlot": lambda config=None: self.slot(),
                "getBlockHeight": lambda config=None: self.slot(),
                "getBalance": self.get_balance,
                "getLatestBlockhash": self.get_latest_blockhash,
                "sendTransaction": self.send_transaction,
                "getSignatureStatuses": self.get_signature_statuses,
                "getSignaturesForAddress": self.get_signatures_for_address,
                "getTransaction": self.get_transaction,
                "requestAirdrop": self.request_airdrop,
                "getTokenAccountsByOwner": self.get_token_accounts_by_owner,
                "getTokenAccountBalance": self.get_token_account_balance,
                "getMinimumBalanceForRentExemption": lambda size, config=None: int(
                    self.svm.minimum_balance_for_rent_exemption(size)
                ),
            },
            error_status=200,
        )

    def slot(self) -> int:
        return int(self.svm.get_clock().slot)

    def advance(self, slots: int = 1) -> None:
        with self.server.engine():
            self._advance(slots)

    def _advance(self, slots: int = 1) -> int:
        slot = self.slot() + slots
        self.svm.warp_to_slot(slot)
        self.svm.expire_blockhash()
        return slot

    def _context(self, value: Any) -> dict[str, Any]:
        return {"context": {"slot": self.slot(), "apiVersion": "litesvm-facade"}, "value": value}

    def _balances(self, keys: tuple[str, ...]) -> tuple[int, ...]:
        return tuple(int(self.svm.get_balance(Pubkey.from_string(k)) or 0) for k in keys)

    # -- the documented methods ---------------------------------------------------------------
    def get_balance(self, address: str, config: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            key = Pubkey.from_string(address)
        except ValueError:
            raise RpcFault(-32602, "Invalid param: Invalid") from None
        return self._context(int(self.svm.get_balance(key) or 0))

    def get_latest_blockhash(self, config: dict[str, Any] | None = None) -> dict[str, Any]:
        blockhash = str(self.svm.latest_blockhash())
        return self._context({"blockhash": blockhash, "lastValidBlockHeight": self.slot() + 150})

    def send_transaction(self, encoded: str, config: dict[str, Any] | None = None) -> str:
        if (config or {}).get("encoding") != "base64":
            raise RpcFault(-32602, "this facade takes base64 only")
        try:
            tx = VersionedTransaction.from_bytes(base64.b64decode(encoded))
        except ValueError as exc:
            raise RpcFault(-32602, f"failed to deserialize solana_transaction: {exc}") from None
        keys = tuple(str(k) for k in tx.message.account_keys)
        pre = self._balances(keys)
        pre_tokens = self._token_balances(keys)
        result = self.svm.send_transaction(tx)
        if isinstance(result, FailedTransactionMetadata):
            logs = list(result.meta().logs())
            raise RpcFault(-32002, f"Transaction simulation failed: {result.err()}; logs {logs}")
        signature = str(tx.signatures[0])
        message = {
            "accountKeys": list(keys),
            "recentBlockhash": str(tx.message.recent_blockhash),
            "instructions": [
                {
                    "programIdIndex": ix.program_id_index,
                    "accounts": list(ix.accounts),
                    "data": base64.b64encode(bytes(ix.data)).decode(),
                }
                for ix in tx.message.instructions
            ],
        }
        self._land(
            signature, keys, pre, int(result.fee()), tuple(result.logs()), message, pre_tokens
        )
        return signature

    def _land(
        self,
        signature: str,
        keys: tuple[str, ...],
        pre: tuple[int, ...],
        fee: int,
        logs: tuple[str, ...],
        message: dict[str, Any],
        pre_tokens: tuple[dict[str, Any], ...] = (),
    ) -> None:
        post = self._balances(keys)
        post_tokens = self._token_balances(keys)
        slot = self._advance()
        self.landed[signature] = _Landed(
            slot, keys, pre, post, fee, logs, message, pre_tokens, post_tokens
        )
        self.order.append(signature)

    def request_airdrop(self, address: str, lamports: int, config: Any = None) -> str:
        keys = (address,)
        pre = self._balances(keys)
        result = self.svm.airdrop(Pubkey.from_string(address), lamports)
        if isinstance(result, FailedTransactionMetadata):
            raise RpcFault(-32600, f"airdrop failed: {result.err()}")
        signature = str(result.signature())
        self._land(
            signature,
            keys,
            pre,
            int(result.fee()),
            tuple(result.logs()),
            {"accountKeys": list(keys)},
        )
        return signature

    def _level(self, slot: int) -> str:
        return "finalized" if self.slot() - slot >= FINALITY_SLOTS else "confirmed"

    def get_signature_statuses(
        self, signatures: list[str], config: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        out: list[dict[str, Any] | None] = []
        for signature in signatures:
            landed = self.landed.get(signature)
            if landed is None:
                out.append(None)
                continue
            level = self._level(landed.slot)
            out.append(
                {
                    "slot": landed.slot,
                    "confirmations": None if level == "finalized" else self.slot() - landed.slot,
                    "err": None,
                    "status": {"Ok": None},
                    "confirmationStatus": level,
                }
            )
        return self._context(out)

    def get_signatures_for_address(
        self, address: str, config: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        config = config or {}
        limit = int(config.get("limit", 1000))
        newest_first = [s for s in reversed(self.order) if address in self.landed[s].keys]
        if before := config.get("before"):
            newest_first = newest_first[newest_first.index(before) + 1 :]
        return [
            {
                "signature": s,
                "slot": self.landed[s].slot,
                "err": None,
                "memo": None,
                "blockTime": None,
                "confirmationStatus": self._level(self.landed[s].slot),
            }
            for s in newest_first[:limit]
        ]

    def get_transaction(self, signature: str, config: dict[str, Any] | None = None) -> Any:
        landed = self.landed.get(signature)
        if landed is None:
            return None
        return {
            "slot": landed.slot,
            "blockTime": None,
            "version": "legacy",
            "meta": {
                "err": None,
                "status": {"Ok": None},
                "fee": landed.fee,
                "preBalances": list(landed.pre),
                "postBalances": list(landed.post),
                "logMessages": list(landed.logs),
                "preTokenBalances": list(landed.pre_tokens),
                "postTokenBalances": list(landed.post_tokens),
                "loadedAddresses": {"writable": [], "readonly": []},
            },
            "transaction": {"signatures": [signature], "message": landed.message},
        }

    # -- SPL tokens (accounts as the token programs store them; amounts as strings) -------------
    def _token_account(self, address: str) -> tuple[TokenAccount, str] | None:
        account = self.svm.get_account(Pubkey.from_string(address))
        if account is None or account.owner not in (TOKEN_PROGRAM, TOKEN_2022_PROGRAM):
            return None
        data = bytes(account.data)
        if len(data) < 165:
            return None  # a mint, not a token account
        return TokenAccount.from_bytes(data[:165]), str(account.owner)

    def _amount(self, token: TokenAccount) -> dict[str, Any]:
        mint = self.svm.get_account(token.mint)
        assert mint is not None
        decimals = Mint.from_bytes(bytes(mint.data)[:82]).decimals
        ui = token.amount / 10**decimals
        return {
            "amount": str(token.amount),
            "decimals": decimals,
            "uiAmount": ui,
            "uiAmountString": str(ui),
        }

    def _token_balances(self, keys: tuple[str, ...]) -> tuple[dict[str, Any], ...]:
        """The token accounts among `keys`, as the RPC's pre/postTokenBalances list them."""
        out = []
        for index, key in enumerate(keys):
            found = self._token_account(key)
            if found is None:
                continue
            token, program = found
            out.append(
                {
                    "accountIndex": index,
                    "mint": str(token.mint),
                    "owner": str(token.owner),
                    "programId": program,
                    "uiTokenAmount": self._amount(token),
                }
            )
        return tuple(out)

    def get_token_account_balance(self, address: str, config: Any = None) -> dict[str, Any]:
        found = self._token_account(address)
        if found is None:
            raise RpcFault(-32602, "Invalid param: not a Token account")
        return self._context(self._amount(found[0]))

    def get_token_accounts_by_owner(
        self, owner: str, selector: dict[str, str], config: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        if (config or {}).get("encoding") != "jsonParsed" or len(selector) != 1:
            raise RpcFault(-32602, "this facade answers {mint} or {programId}, jsonParsed only")
        if not {"mint", "programId"} & set(selector):
            raise RpcFault(-32602, "Invalid param: filter is neither mint nor programId")
        seen = sorted({k for landed in self.landed.values() for k in landed.keys})
        out = []
        for address in seen:
            found = self._token_account(address)
            if found is None:
                continue
            token, program = found
            if str(token.owner) != owner:
                continue
            if selector.get("mint", str(token.mint)) != str(token.mint):
                continue
            if selector.get("programId", program) != program:
                continue
            info = {"mint": str(token.mint), "owner": owner, "tokenAmount": self._amount(token)}
            parsed = {"info": info, "type": "account"}
            data = {"program": "spl-token", "parsed": parsed, "space": 165}
            account = {"data": data, "owner": program, "executable": False}
            out.append({"pubkey": address, "account": account})
        return self._context(out)
