"""The public-vector loader: a missing vector skips locally but fails under CI (`CI=true`)."""

from __future__ import annotations

from pathlib import Path

import pytest

import tests.conftest as shared


def _outcome(*parts: str) -> BaseException:
    try:
        shared.vector_path(*parts)
    except BaseException as exc:  # pytest's skip/fail outcomes are BaseExceptions
        return exc
    raise AssertionError("a missing vector neither skipped nor failed")


@pytest.mark.parametrize("ci", ["true", "TRUE", "1"])
def test_missing_vector_fails_under_ci(
    ci: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shared, "VECTORS_DIR", tmp_path / "absent")
    monkeypatch.setenv("CI", ci)
    exc = _outcome("frost", "none.json")
    assert isinstance(exc, pytest.fail.Exception), type(exc)
    assert str(tmp_path / "absent") in str(exc)


@pytest.mark.parametrize("ci", [None, "", "false", "0"])
def test_missing_vector_skips_outside_ci(
    ci: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shared, "VECTORS_DIR", tmp_path / "absent")
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    exc = _outcome("frost", "none.json")
    assert isinstance(exc, pytest.skip.Exception), type(exc)
    assert "shared/vectors" in str(exc) and str(tmp_path / "absent") in str(exc)


def test_present_vector_is_returned_under_ci(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "frost").mkdir()
    (tmp_path / "frost" / "v.json").write_text('{"a": 1}')
    monkeypatch.setattr(shared, "VECTORS_DIR", tmp_path)
    monkeypatch.setenv("CI", "true")
    assert shared.load_json_vector("frost", "v.json") == {"a": 1}
