"""On-device bundles: written atomically, described by a manifest, verifiable.

A bundle is a directory holding `model.tflite`, `manifest.json`, `report.md`
and, when given, `labels.txt` (plus target files). The manifest records the
sha256 and size of every other file. It is built in a temporary sibling
directory, fsynced, then swapped into place in one step (renameat2 with
RENAME_EXCHANGE on Linux), so an interrupted export never leaves a half
bundle and never damages an earlier bundle at that path.

Example:
    >>> write_bundle(Path("build/android"), {"model.tflite": data}, manifest)
    >>> verify_bundle(Path("build/android"))["files"]
    3
"""
from __future__ import annotations

import ctypes
import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from exporter.errors import IntegrityError, UsageError

MANIFEST = "manifest.json"
SCHEMA_VERSION = 1
_TMP_PREFIX = ".edgex-tmp-"
_RENAME_EXCHANGE = 2
HIL_PREFIX = "hil/"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0


def check_replaceable(out: Path) -> None:
    """Refuse an `--out` that exists and is not an edgex bundle (it is never replaced).

    Raises:
        UsageError: naming the path.
    """
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise UsageError(f"--out {out} exists and is not a directory; refusing to replace it")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise UsageError(f"--out {out} is a non-empty directory that is not an edgex bundle; refusing to replace it")


def _remove_stale_temps(parent: Path, name: str) -> None:
    for stale in parent.glob(f"{_TMP_PREFIX}{name}-*"):
        shutil.rmtree(stale, ignore_errors=True)


def write_bundle(out: Path, files: dict[str, bytes], manifest: dict, *, make_zip: bool = False) -> Path:
    """Write a bundle at `out` atomically, replacing an earlier bundle there.

    Args:
        out: the bundle directory.
        files: relative path → bytes of every file but the manifest.
        manifest: the manifest body; `schema_version` and `files` are filled in.
        make_zip: also write `<out>.zip` (atomically).

    Returns:
        The bundle path.

    Raises:
        UsageError: `out` exists and is not a bundle (it is never replaced).
    """
    out = Path(out).absolute()
    check_replaceable(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(out.parent, out.name)
    body = dict(manifest, schema_version=SCHEMA_VERSION,
                files={name: {"sha256": sha256(data), "bytes": len(data)} for name, data in sorted(files.items())})
    tmp = Path(tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{out.name}-", dir=out.parent))
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)
        for name, data in files.items():
            _write_file(tmp / name, data)
        _write_file(tmp / MANIFEST, json.dumps(body, indent=2, sort_keys=True).encode())
        _fsync_dir(tmp)
        if make_zip:
            _write_zip(out.with_suffix(".zip"), tmp)
        if out.exists() and _exchange(tmp, out):
            shutil.rmtree(tmp)      # tmp now holds the old bundle
        else:
            if out.exists():        # no renameat2: two renames; the old bundle is never lost
                old = out.parent / f"{_TMP_PREFIX}{out.name}-old"
                os.replace(out, old)
                os.replace(tmp, out)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, out)
        _fsync_dir(out.parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def _write_zip(path: Path, source: Path) -> None:
    tmp = path.with_name(f"{_TMP_PREFIX}{path.name}")
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
            for file in sorted(p for p in source.rglob("*") if p.is_file()):
                info = zipfile.ZipInfo(file.relative_to(source).as_posix(), date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o100644 << 16          # a regular file, rw-r--r--
                archive.writestr(info, file.read_bytes())
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_manifest(bundle: Path) -> dict:
    """Read and parse a bundle's manifest.

    Raises:
        IntegrityError: missing or unparsable manifest.
    """
    path = Path(bundle) / MANIFEST
    if not Path(bundle).is_dir():
        raise IntegrityError(f"{bundle} is not a bundle directory")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IntegrityError(f"{bundle}: missing {MANIFEST}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise IntegrityError(f"{bundle}: {MANIFEST} is not valid JSON: {exc}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise IntegrityError(f"{bundle}: {MANIFEST} has no file list")
    return manifest


def _bad_runs(bundle: Path, runs: set[str]) -> list[str]:
    problems = []
    for name in sorted(runs):
        path = bundle / name
        if path.is_symlink() or not name.endswith(".json"):
            problems.append(f"unexpected file in hil/: {name}")
            continue
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError):
            problems.append(f"hil run is not valid JSON: {name}")
    return problems


def verify_bundle(bundle: Path) -> dict:
    """Re-hash every file of a bundle (a directory, or its .zip) against its manifest.

    Device runs under hil/ must be valid JSON; archives are checked in memory (exporter/archive.py).

    Returns:
        {"bundle": path, "files": count, "status": manifest status}.

    Raises:
        IntegrityError: naming every changed, missing or extra file.
    """
    bundle = Path(bundle)
    if bundle.suffix == ".zip" and bundle.is_file():
        from exporter.archive import verify_archive

        return verify_archive(bundle)
    manifest = read_manifest(bundle)
    listed = manifest["files"]
    present = {p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file() or p.is_symlink()}
    runs = {name for name in present if name.startswith(HIL_PREFIX)}   # device runs, added after export
    problems = [f"extra file: {name}" for name in sorted(present - set(listed) - {MANIFEST} - runs)]
    problems += _bad_runs(bundle, runs)
    for name, meta in sorted(listed.items()):
        path = bundle / name
        if name not in present:
            problems.append(f"missing file: {name}")
        elif path.is_symlink():
            problems.append(f"symlink not allowed: {name}")
        else:
            data = path.read_bytes()
            if len(data) != meta.get("bytes") or sha256(data) != meta.get("sha256"):
                problems.append(f"changed file: {name} (sha256 does not match the manifest)")
    if problems:
        raise IntegrityError(f"bundle {bundle} failed verification:\n  " + "\n  ".join(problems))
    return {"bundle": str(bundle), "files": len(listed), "status": manifest.get("status")}
