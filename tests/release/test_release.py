"""Signed releases through the CLI, with a throw-away key: a good release verifies; a changed
byte, a swapped signature, a missing or an extra file, another key all fail with a message."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tholos.cli import main
from tholos.release import RELEASE_PUBLIC_KEY


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    code = main([*argv, "--json"])
    return code, json.loads(capsys.readouterr().out)


@pytest.fixture
def release(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Path]:
    key = tmp_path / "k"
    assert _run(capsys, "release", "keygen", "--out", str(key))[0] == 0
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    wheel = tmp_path / "tholos-0.1.0-py3-none-any.whl"
    sdist = tmp_path / "tholos-0.1.0.tar.gz"
    wheel.write_bytes(b"PK\x03\x04 wheel bytes")
    sdist.write_bytes(b"\x1f\x8b sdist bytes")
    sig = tmp_path / "release.sig.json"
    code, out = _run(
        capsys, "release", "sign", "--key", str(key), "--out", str(sig), str(wheel), str(sdist)
    )
    assert code == 0 and len(out["artifacts"]) == 2
    return {"key": key, "pub": Path(f"{key}.pub"), "wheel": wheel, "sdist": sdist, "sig": sig}


def _verify(
    capsys: pytest.CaptureFixture[str], r: dict[str, Path], *files: Path, **kw: Path
) -> tuple[int, dict]:  # type: ignore[type-arg]
    sig = kw.get("sig", r["sig"])
    pub = kw.get("pub", r["pub"])
    return _run(
        capsys,
        "verify-release",
        *map(str, files),
        "--signature",
        str(sig),
        "--public-key",
        str(pub),
    )


def test_good_release_verifies(
    capsys: pytest.CaptureFixture[str], release: dict[str, Path]
) -> None:
    code, out = _verify(capsys, release, release["wheel"], release["sdist"])
    assert code == 0 and out["verified"] is True
    assert {a["name"] for a in out["artifacts"]} == {release["wheel"].name, release["sdist"].name}


def test_changed_byte_fails(capsys: pytest.CaptureFixture[str], release: dict[str, Path]) -> None:
    data = bytearray(release["wheel"].read_bytes())
    data[5] ^= 1
    release["wheel"].write_bytes(bytes(data))
    code, out = _verify(capsys, release, release["wheel"], release["sdist"])
    assert code == 3 and "differs from the signed manifest" in out["error"]["message"]
    assert release["wheel"].name in out["error"]["message"]


def test_swapped_signature_fails(
    capsys: pytest.CaptureFixture[str], release: dict[str, Path], tmp_path: Path
) -> None:
    # a signature by the same key over another release, with this release's manifest put in
    other = tmp_path / "other.whl"
    other.write_bytes(b"another release")
    sig2 = tmp_path / "other.sig.json"
    assert (
        _run(
            capsys, "release", "sign", "--key", str(release["key"]), "--out", str(sig2), str(other)
        )[0]
        == 0
    )
    doc = json.loads(release["sig"].read_text())
    doc["signature"] = json.loads(sig2.read_text())["signature"]
    release["sig"].write_text(json.dumps(doc))
    code, out = _verify(capsys, release, release["wheel"], release["sdist"])
    assert code == 3 and "signature is not by the release key" in out["error"]["message"]


def test_another_key_fails(
    capsys: pytest.CaptureFixture[str], release: dict[str, Path], tmp_path: Path
) -> None:
    assert _run(capsys, "release", "keygen", "--out", str(tmp_path / "k2"))[0] == 0
    code, out = _verify(
        capsys, release, release["wheel"], release["sdist"], pub=tmp_path / "k2.pub"
    )
    assert code == 3 and "not by the release key" in out["error"]["message"]
    # with no --public-key the project's key is used: a throw-away signature does not pass it
    code = main(
        [
            "verify-release",
            str(release["wheel"]),
            str(release["sdist"]),
            "--signature",
            str(release["sig"]),
            "--json",
        ]
    )
    assert code == 3 and "not by the release key" in capsys.readouterr().out


def test_missing_or_extra_file_fails(
    capsys: pytest.CaptureFixture[str], release: dict[str, Path], tmp_path: Path
) -> None:
    code, out = _verify(capsys, release, release["wheel"])
    assert code == 3 and "not given" in out["error"]["message"]
    release["sdist"].unlink()
    code, out = _verify(capsys, release, release["wheel"], release["sdist"])
    assert code == 3 and "does not exist" in out["error"]["message"]
    extra = tmp_path / "extra.txt"
    extra.write_text("x")
    code, out = _verify(capsys, release, release["wheel"], extra)
    assert code == 3 and "not in the signed manifest" in out["error"]["message"]


def test_keygen_refuses_to_overwrite(
    capsys: pytest.CaptureFixture[str], release: dict[str, Path]
) -> None:
    before = release["key"].read_text()
    code, out = _run(capsys, "release", "keygen", "--out", str(release["key"]))
    assert code == 1 and "not overwriting" in out["error"]["message"]
    assert release["key"].read_text() == before


def test_project_key_is_an_ed25519_public_key() -> None:
    assert len(bytes.fromhex(RELEASE_PUBLIC_KEY)) == 32
    Ed25519PublicKey.from_public_bytes(bytes.fromhex(RELEASE_PUBLIC_KEY))
