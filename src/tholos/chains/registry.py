"""The chain packages by name. A node parses with the package named by the approved intent's
`chain`, never one the gateway picks. Packages are imported on first use (their libraries are
heavy), so a node that serves no Solana wallet never loads solders."""

from __future__ import annotations

import importlib

from tholos.chains.base import Chain

CHAINS: dict[str, str] = {
    "bitcoin": "tholos.chains.bitcoin",
    "ethereum": "tholos.chains.ethereum",
    "solana": "tholos.chains.solana",
}
"""Chain name -> module exposing `CHAIN`, an object implementing `tholos.chains.base.Chain`."""

_loaded: dict[str, Chain] = {}


def chain_for(name: str) -> Chain | None:
    """The chain package for `name`, or None if tholos has none by that name."""
    chain = _loaded.get(name)
    if chain is None:
        module = CHAINS.get(name)
        if module is None:
            return None
        chain = importlib.import_module(module).CHAIN
        if not isinstance(chain, Chain):
            raise TypeError(f"{module}.CHAIN does not implement the Chain interface")
        _loaded[name] = chain
    return chain
