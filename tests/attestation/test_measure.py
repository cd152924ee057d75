"""The distribution measurement: the same for two installs of the same files, different after
any change to a file, an added module or another lock file; installer-specific files ignored."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from tholos.attestation.measure import (
    MeasurementError,
    measure_distribution,
    measure_package_tree,
    measure_running,
)

ROOT = Path(__file__).resolve().parents[2]


def _install(site: Path, *, installer: str = "pip", pyc: bool = False) -> None:
    """A distribution laid out as an installer leaves it: package files, dist-info, RECORD."""
    pkg = site / "demo_pkg"
    pkg.mkdir(parents=True)
    files = {
        "demo_pkg/__init__.py": b"VALUE = 1\n",
        "demo_pkg/core.py": b"def f():\n    return 2\n",
        "demo_pkg-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: demo-pkg\nVersion: 1.0\n",
        "demo_pkg-1.0.dist-info/INSTALLER": installer.encode() + b"\n",
        "demo_pkg-1.0.dist-info/direct_url.json": f'{{"url": "file://{site}"}}'.encode(),
        "../../bin/demo": f"#!{site}/python\n".encode(),
    }
    if pyc:
        files["demo_pkg/__pycache__/core.cpython-311.pyc"] = b"\x00compiled" + str(site).encode()
    record = []
    for rel, data in files.items():
        if not rel.startswith(".."):
            (site / rel).parent.mkdir(parents=True, exist_ok=True)
            (site / rel).write_bytes(data)
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{rel},sha256={digest},{len(data)}")
    record.append("demo_pkg-1.0.dist-info/RECORD,,")
    (site / "demo_pkg-1.0.dist-info/RECORD").write_text("\n".join(record) + "\n")


def _measure(site: Path, lock: Path | None = None) -> bytes:
    return measure_distribution("demo-pkg", path=[str(site)], lock_file=lock).digest


def test_same_files_same_measurement_across_installs(tmp_path: Path) -> None:
    _install(tmp_path / "a", installer="pip")
    _install(tmp_path / "b", installer="uv", pyc=True)
    m = measure_distribution("demo-pkg", path=[str(tmp_path / "a")])
    assert m.digest == _measure(tmp_path / "b")
    assert m.files == 3 and m.version == "1.0" and not m.editable and m.lock_digest is None


@pytest.mark.parametrize("rel", ["demo_pkg/core.py", "demo_pkg-1.0.dist-info/METADATA"])
def test_any_changed_byte_changes_it(tmp_path: Path, rel: str) -> None:
    _install(tmp_path / "a")
    before = _measure(tmp_path / "a")
    f = tmp_path / "a" / rel
    data = bytearray(f.read_bytes())
    data[-2] ^= 1
    f.write_bytes(bytes(data))
    assert _measure(tmp_path / "a") != before


def test_a_module_added_after_install_changes_it(tmp_path: Path) -> None:
    _install(tmp_path / "a")
    before = _measure(tmp_path / "a")
    (tmp_path / "a/demo_pkg/implant.py").write_text("import os\n")
    assert _measure(tmp_path / "a") != before


def test_lock_file_enters_it(tmp_path: Path) -> None:
    _install(tmp_path / "a")
    lock = tmp_path / "lock.txt"
    lock.write_text("pkg==1 --hash=sha256:00\n")
    with_lock = _measure(tmp_path / "a", lock)
    assert with_lock != _measure(tmp_path / "a")
    lock.write_text("pkg==2 --hash=sha256:00\n")
    assert _measure(tmp_path / "a", lock) != with_lock
    with pytest.raises(MeasurementError, match="lock file"):
        _measure(tmp_path / "a", tmp_path / "absent.txt")


def test_missing_distribution_and_deleted_file(tmp_path: Path) -> None:
    with pytest.raises(MeasurementError, match="not installed"):
        measure_distribution("no-such-dist", path=[str(tmp_path)])
    _install(tmp_path / "a")
    (tmp_path / "a/demo_pkg/core.py").unlink()
    with pytest.raises(MeasurementError, match=r"core\.py"):
        _measure(tmp_path / "a")


@pytest.mark.slow
def test_two_installs_of_the_tholos_wheel_measure_alike(tmp_path: Path) -> None:
    """The real thing: build tholos' wheel, install it twice (one with byte code), measure."""
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    wheels = tmp_path / "wheels"
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(ROOT)],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = wheels.glob("tholos-*.whl")
    for name, extra in (("a", ["--no-compile"]), ("b", ["--compile"])):
        subprocess.run(
            [*pip, "install", "--no-deps", *extra, "--target", str(tmp_path / name), str(wheel)],
            check=True,
        )
    a = measure_distribution("tholos", path=[str(tmp_path / "a")])
    b = measure_distribution("tholos", path=[str(tmp_path / "b")])
    assert a.digest == b.digest and a.files > 50 and not a.editable
    (tmp_path / "b/tholos/attestation/measure.py").write_text("# changed\n")
    assert measure_distribution("tholos", path=[str(tmp_path / "b")]).digest != a.digest


def test_a_package_tree_measurement_follows_its_files_not_its_byte_code(tmp_path: Path) -> None:
    pkg = tmp_path / "demo_pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_bytes(b"VALUE = 1\n")
    (pkg / "sub" / "core.py").write_bytes(b"X = 2\n")
    first = measure_package_tree(pkg, "1.0")
    assert first.editable and first.files == 2 and first.distribution == "demo_pkg (source tree)"
    (pkg / "__pycache__").mkdir()
    (pkg / "__pycache__" / "core.cpython-311.pyc").write_bytes(b"\x00compiled")
    assert measure_package_tree(pkg, "1.0") == first
    (pkg / "sub" / "core.py").write_bytes(b"X = 3\n")
    changed = measure_package_tree(pkg, "1.0")
    assert changed.digest != first.digest
    (pkg / "sub" / "core.py").write_bytes(b"X = 2\n")
    (pkg / "added.py").write_bytes(b"")
    assert measure_package_tree(pkg, "1.0").digest not in (first.digest, changed.digest)


def test_a_running_checkout_is_measured_as_its_package_tree() -> None:
    import tholos

    pkg = Path(tholos.__file__).parent
    m = measure_running(pkg, tholos.__version__)
    if m.distribution == "tholos":  # a real (non-editable) install of this package
        pytest.skip("tholos is installed from a wheel here: the tree fallback is not used")
    assert m == measure_package_tree(pkg, tholos.__version__)
    assert m.editable and m.files > 100
