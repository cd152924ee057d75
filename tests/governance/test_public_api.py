"""`__all__` of the public packages lists exactly what they export, and all of it exists."""

from __future__ import annotations

import importlib

import pytest


@pytest.mark.parametrize("name", ["tholos.governance", "tholos.audit"])
def test_all_is_complete(name: str) -> None:
    module = importlib.import_module(name)
    exported = set(module.__all__)
    assert len(exported) == len(module.__all__)
    for item in exported:
        assert hasattr(module, item), item
    public = {k for k in vars(module) if not k.startswith("_")}
    submodules = {k for k, v in vars(module).items() if type(v).__name__ == "module"}
    assert public - submodules == exported
