"""Recovery keys: the age identity derivation against an independent X25519 (cryptography), and
k-of-m officer shares (any K give the key back; fewer, altered or foreign ones are refused)."""

from __future__ import annotations

import json
from pathlib import Path

import bech32
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given, settings
from hypothesis import strategies as st

from tholos.backup.errors import BackupError
from tholos.backup.recovery import (
    AGE_INFO,
    OfficerShare,
    age_identity,
    combine,
    split_recovery_key,
    write_recovery,
)


@given(st.integers(min_value=1, max_value=2**252))
@settings(max_examples=25, deadline=None)
def test_age_recipient_is_the_x25519_public_key_of_the_derived_key(secret: int) -> None:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=AGE_INFO).derive(
        secret.to_bytes(32, "big")
    )
    public = (
        X25519PrivateKey.from_private_bytes(key)
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    hrp, words = bech32.bech32_decode(str(age_identity(secret).to_public()))
    assert hrp == "age"
    assert words is not None
    assert bytes(bech32.convertbits(words, 5, 8, False) or []) == public


@given(st.data())
@settings(max_examples=15, deadline=None)
def test_any_k_of_m_shares_give_back_the_key_and_fewer_do_not(data: st.DataObject) -> None:
    m = data.draw(st.integers(1, 6))
    k = data.draw(st.integers(1, m))
    recipient, shares = split_recovery_key("c1", 3, m, k)
    subset = data.draw(st.permutations(shares).map(lambda s: s[:k]))
    assert str(combine(list(subset), "c1", 3, recipient).to_public()) == recipient
    if k > 1:
        with pytest.raises(BackupError, match=f"{k - 1} distinct officer share"):
            combine(list(subset[: k - 1]), "c1", 3, recipient)
        # The same share twice is one share.
        with pytest.raises(BackupError, match="needed"):
            combine([subset[0]] * k, "c1", 3, recipient)


def test_altered_or_foreign_shares_are_refused(tmp_path: Path) -> None:
    recipient, shares = split_recovery_key("c1", 1, 3, 2)
    bad = OfficerShare(**{**shares[0].__dict__, "share": shares[0].share + 1})
    with pytest.raises(BackupError, match="do not give back its recovery key"):
        combine([bad, shares[1]], "c1", 1, recipient)
    with pytest.raises(BackupError, match="not node 2"):
        combine(shares[:2], "c1", 2, recipient)
    with pytest.raises(BackupError, match="cluster c2"):
        combine(shares[:2], "c2", 1, recipient)
    assert "<secret>" in repr(shares[0]) and f"{shares[0].share:064x}" not in repr(shares[0])


def test_share_files_are_private_and_checksummed(tmp_path: Path) -> None:
    for i in (1, 2):
        (tmp_path / f"node-{i}").mkdir()
    out = write_recovery(tmp_path, "c1", [1, 2], 3, 2)
    assert set(out) == {"1", "2"}
    f = tmp_path / "recovery" / "node-2" / "officer-3.json"
    assert f.stat().st_mode & 0o777 == 0o600
    s = OfficerShare.load(f)
    assert (s.node_id, s.officer, s.threshold, s.officers) == (2, 3, 2, 3)
    rec = json.loads((tmp_path / "node-2" / "recovery.json").read_text())
    assert rec["recipient"] == s.recipient and "share" not in rec
    body = json.loads(f.read_text())
    body["share"] = "00" * 32
    f.write_text(json.dumps(body))
    with pytest.raises(BackupError, match="damaged"):
        OfficerShare.load(f)
    f.write_text("not json")
    with pytest.raises(BackupError, match="cannot read officer share"):
        OfficerShare.load(f)
    with pytest.raises(BackupError, match="1 <= K <= M"):
        split_recovery_key("c1", 1, 2, 3)
