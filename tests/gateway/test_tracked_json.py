"""The gateway encodes a tracked request's JSON once, and its approvals again only on change."""

from __future__ import annotations

import json

from tests.governance.conftest import Cluster
from tholos.gateway.tracked import Tracked


def test_request_and_approvals_json_follow_the_tracked_request() -> None:
    c = Cluster()
    req = c.request(amount=50_000)
    t = Tracked(req, [])
    assert t.approvals_json() == "[]"
    assert json.loads(t.request_json()) == req.model_dump(mode="json")
    first = c.approvals(req, "tina")
    t.approvals = list(first)
    assert json.loads(t.approvals_json()) == [a.model_dump(mode="json") for a in first]
    both = [*first, *c.approvals(req, "tom")]
    t.approvals = both
    assert json.loads(t.approvals_json()) == [a.model_dump(mode="json") for a in both]
    t.approvals = [both[1]]  # replaced, same length as before the first change
    assert json.loads(t.approvals_json()) == [both[1].model_dump(mode="json")]
