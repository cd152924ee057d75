"""The strict-JSON depth scan that runs before any parse (gateway/request_body.py)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tholos.gateway import request_body


def _nesting(v: Any) -> int:
    if isinstance(v, dict):
        return 1 + max((_nesting(x) for x in v.values()), default=0)
    if isinstance(v, list):
        return 1 + max((_nesting(x) for x in v), default=0)
    return 0


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab'),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES)
def test_depth_counts_nesting_not_brackets_in_strings(value: Any) -> None:
    """The pre-parse depth scan agrees with the parsed document (brackets in strings ignored)."""
    text = json.dumps(value)
    assert request_body.depth(text) == _nesting(value) or (
        _nesting(value) <= request_body.MAX_DEPTH
        and request_body.depth(text) <= request_body.MAX_DEPTH
    )
