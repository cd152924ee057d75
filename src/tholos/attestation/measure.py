"""A reproducible measurement of the installed tholos distribution: what a node says it runs.

The files are those its dist-info RECORD lists plus any other file found under the same top-level
package folders (a module dropped in after installation changes the measurement too). Each file's
path, relative to the install root, and the SHA-256 of its bytes *as read from disk* (not as the
RECORD claims) enter one SHA-256 in sorted path order, with the lock file's digest last.

Left out, because an installer writes them differently on every install of the same wheel: byte
code (`__pycache__`, `*.pyc`), the installer's own notes (`INSTALLER`, `REQUESTED`,
`direct_url.json`), `RECORD` itself (it lists hashes of the files measured here) and files outside
the install root (console scripts carry the interpreter's path in their first line). An editable
install's RECORD lists only a path hook, not the sources: its measurement says so (`editable`)
and is not one to pin. What a node measures is `measure_running`: the distribution when it is a
real install of the imported package, else the imported package folder (`measure_package_tree`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path, PurePosixPath

DOMAIN = b"tholos-distribution-measurement-v1\n"
TREE_DOMAIN = b"tholos-package-tree-measurement-v1\n"
INSTALLER_FILES = frozenset({"INSTALLER", "REQUESTED", "direct_url.json", "RECORD"})


class MeasurementError(Exception):
    """The distribution cannot be measured (not installed, no RECORD, unreadable file)."""


@dataclass(frozen=True)
class Measurement:
    """The digest a node presents, with what it was computed over."""

    digest: bytes  # 32 bytes, SHA-256
    distribution: str
    version: str
    files: int
    lock_digest: bytes | None  # SHA-256 of the lock file, None when none was measured
    editable: bool

    @property
    def hex(self) -> str:
        return self.digest.hex()

    def to_dict(self) -> dict[str, object]:
        return {
            "digest": self.digest.hex(),
            "distribution": self.distribution,
            "version": self.version,
            "files": self.files,
            "lock_digest": self.lock_digest.hex() if self.lock_digest is not None else None,
            "editable": self.editable,
        }


def _is_installer_specific(rel: PurePosixPath) -> bool:
    if rel.parts and rel.parts[0] == "..":
        return True
    if "__pycache__" in rel.parts or rel.suffix == ".pyc":
        return True
    return bool(rel.parent.name.endswith(".dist-info") and rel.name in INSTALLER_FILES)


def _is_editable(dist: metadata.Distribution) -> bool:
    text = dist.read_text("direct_url.json")
    if not text:
        return False
    try:
        info = json.loads(text)
    except ValueError:
        return False
    return bool(isinstance(info, dict) and info.get("dir_info", {}).get("editable"))


def measured_files(dist: metadata.Distribution) -> tuple[Path, list[PurePosixPath]]:
    """The install root and the sorted relative paths that the measurement covers."""
    if dist.files is None:
        raise MeasurementError(f"{dist.metadata['Name']}: no RECORD, cannot list its files")
    root = Path(str(dist.locate_file("")))
    listed = {PurePosixPath(str(f)) for f in dist.files}
    kept = {p for p in listed if not _is_installer_specific(p)}
    # Top-level folders the distribution owns (its packages), walked for files RECORD omits.
    top = {p.parts[0] for p in kept if len(p.parts) > 1 and not p.parts[0].endswith(".dist-info")}
    for name in top:
        for f in (root / name).rglob("*"):
            if f.is_file():
                rel = PurePosixPath(f.relative_to(root).as_posix())
                if not _is_installer_specific(rel):
                    kept.add(rel)
    return root, sorted(kept, key=lambda p: p.as_posix().encode())


def _digest(
    domain: bytes, root: Path, files: list[PurePosixPath], lock_file: Path | None
) -> tuple[bytes, bytes | None]:
    """SHA-256 over each file's path and content digest (sorted), then the lock file's digest."""
    h = hashlib.sha256(domain)
    for rel in files:
        try:
            content = (root / rel).read_bytes()
        except OSError as exc:
            raise MeasurementError(f"cannot read {rel}: {exc.strerror}") from None
        p = rel.as_posix().encode()
        h.update(len(p).to_bytes(4, "big") + p + hashlib.sha256(content).digest())
    lock_digest = None
    if lock_file is not None:
        try:
            lock_digest = hashlib.sha256(lock_file.read_bytes()).digest()
        except OSError as exc:
            raise MeasurementError(
                f"cannot read the lock file {lock_file}: {exc.strerror}"
            ) from None
        h.update(b"lock" + lock_digest)
    else:
        h.update(b"nolock")
    return h.digest(), lock_digest


def measure_package_tree(
    package_dir: Path, version: str, *, lock_file: Path | None = None
) -> Measurement:
    """Measure the files of an imported package folder, byte code left out: what runs from a
    source checkout or an editable install, whose RECORD lists no sources. Marked `editable`
    and measured under its own domain, so it never equals (nor is pinned as) a wheel's."""
    root = package_dir.parent
    files = sorted(
        (
            PurePosixPath(f.relative_to(root).as_posix())
            for f in package_dir.rglob("*")
            if f.is_file()
        ),
        key=lambda p: p.as_posix().encode(),
    )
    kept = [p for p in files if not _is_installer_specific(p)]
    digest, lock_digest = _digest(TREE_DOMAIN, root, kept, lock_file)
    return Measurement(
        digest=digest,
        distribution=f"{package_dir.name} (source tree)",
        version=version,
        files=len(kept),
        lock_digest=lock_digest,
        editable=True,
    )


def measure_running(
    package_dir: Path, version: str, *, lock_file: Path | None = None
) -> Measurement:
    """What this process runs: the installed distribution when it is a real install that owns
    the imported package folder, else (editable install, source checkout, a stray egg-info)
    the package folder itself."""
    try:
        m = measure_distribution(package_dir.name, lock_file=lock_file)
        dist = metadata.distribution(package_dir.name)
        owned = Path(str(dist.locate_file(package_dir.name))).resolve() == package_dir.resolve()
        if not m.editable and owned:
            return m
    except (MeasurementError, metadata.PackageNotFoundError):
        pass
    return measure_package_tree(package_dir, version, lock_file=lock_file)


def measure_distribution(
    name: str = "tholos", *, path: list[str] | None = None, lock_file: Path | None = None
) -> Measurement:
    """Measure the installed distribution `name` (found on `path`, default sys.path)."""
    found = list(metadata.distributions(name=name, path=path)) if path else []
    if path is None:
        try:
            found = [metadata.distribution(name)]
        except metadata.PackageNotFoundError:
            found = []
    if not found:
        raise MeasurementError(f"distribution {name!r} is not installed")
    dist = found[0]
    root, files = measured_files(dist)
    digest, lock_digest = _digest(DOMAIN, root, files, lock_file)
    return Measurement(
        digest=digest,
        distribution=str(dist.metadata["Name"]),
        version=str(dist.version),
        files=len(files),
        lock_digest=lock_digest,
        editable=_is_editable(dist),
    )
