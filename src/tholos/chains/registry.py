"""The chain packages by name. A node parses with the package named by the approved intent's
`chain`, never one the gateway picks. Packages are imported on first use (their libraries are
heavy), so a node that serves no Solana wallet never loads solders."""

from __future__ import annotations

import importlib

from tholos.chains.base import Chain

CHAINS: dict[str, str] = {
    "bitcoin": "tholos.chains.bitcoin:BITCOIN",
    "ethereum": "tholos.chains.ethereum:ETHEREUM",
    "solana": "tholos.chains.solana:SOLANA",
}
"""Chain name -> "module:object", the object implementing `tholos.chains.base.Chain`."""

_loaded: dict[str, Chain] = {}


def chain_for(name: str) -> Chain | None:
    """The chain package for `name`, or None if tholos has none by that name."""
    chain = _loaded.get(name)
    if chain is None:
        where = CHAINS.get(name)
        if where is None:
            return None
        module, _, attribute = where.partition(":")
        chain = getattr(importlib.import_module(module), attribute)
        if not isinstance(chain, Chain):
            raise TypeError(f"{where} does not implement the Chain interface")
        _loaded[name] = chain
    return chain
