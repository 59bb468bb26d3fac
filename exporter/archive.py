"""Verifying a bundle archive (`OUT.zip`) in memory, refusing hostile archives before reading them.

Refused (IntegrityError, exit 3) before any member is read: absolute paths, `..` segments,
backslashes and drive letters, symlinks and other non-regular entries, duplicate names, more
than MAX_MEMBERS members, a declared total above MAX_TOTAL_BYTES, any member whose declared
size is more than MAX_RATIO times its compressed size (zip bombs), encrypted members and
compression methods other than stored and deflate. Nothing is ever extracted: members are read
with a size bound and hashed against the archive's own manifest (checked by exporter/manifest.py).
A damaged archive (flipped bytes, a truncated file, a local header that disagrees with the
central directory) is an IntegrityError too, whatever zipfile or zlib raise on it.

Example:
    >>> result = verify_archive(bundle.with_name("android.zip"))     # build/android.zip, beside the bundle
    >>> result["files"], result["status"]
    (9, 'pass')
"""
from __future__ import annotations

import hashlib
import lzma
import stat
import struct
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from exporter.errors import IntegrityError
from exporter.manifest import MANIFEST, MAX_MANIFEST_BYTES, parse_manifest, problems_message

MAX_MEMBERS = 10_000
MAX_TOTAL_BYTES = 4 << 30
MAX_RATIO = 200
_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}
# What zipfile, zlib and friends raise on damaged or hostile bytes (RuntimeError: encrypted;
# NotImplementedError: unknown compression; EOFError: truncated; KeyError: missing member).
ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, RuntimeError, NotImplementedError,
              ValueError, KeyError, IndexError, OverflowError, struct.error, zlib.error, lzma.LZMAError)


def _check_member(info: zipfile.ZipInfo) -> str | None:
    name = info.filename
    path = PurePosixPath(name)
    if name.startswith("/") or "\\" in name or (len(name) > 1 and name[1] == ":"):
        return f"absolute or non-POSIX path: {name!r}"
    if ".." in path.parts:
        return f"path escapes the bundle: {name!r}"
    kind = stat.S_IFMT(info.external_attr >> 16)      # 0: no Unix file type recorded
    if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
        return f"not a regular file (symlink or device): {name!r}"
    if info.flag_bits & 0x1:
        return f"encrypted member: {name!r}"
    if info.compress_type not in _METHODS:
        return f"compression method {info.compress_type} of {name!r} is not allowed (only stored and deflate)"
    if info.compress_size and info.file_size / info.compress_size > MAX_RATIO:
        return f"{name!r} expands {info.file_size / info.compress_size:.0f}x (limit {MAX_RATIO}x): refusing a zip bomb"
    return None


def _read(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    try:
        with archive.open(info) as fh:
            data = fh.read(info.file_size + 1)
    except ZIP_ERRORS as exc:
        raise IntegrityError(f"{info.filename!r} cannot be read: {type(exc).__name__}: {exc}") from None
    if len(data) != info.file_size:
        raise IntegrityError(f"{info.filename!r} does not hold the size its header declares")
    return data


def _open(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except ZIP_ERRORS as exc:
        raise IntegrityError(f"{path}: not a readable zip archive: {type(exc).__name__}: {exc}") from None


def _structure(archive: zipfile.ZipFile, path: Path) -> dict[str, zipfile.ZipInfo]:
    """The archive's file members by name, after refusing a hostile structure."""
    infos = [i for i in archive.infolist() if not i.is_dir()]
    names = [i.filename for i in infos]
    problems = [p for p in (_check_member(i) for i in archive.infolist()) if p]
    if len(infos) > MAX_MEMBERS:
        problems.append(f"{len(infos)} members (limit {MAX_MEMBERS})")
    if sum(i.file_size for i in infos) > MAX_TOTAL_BYTES:
        problems.append(f"declares {sum(i.file_size for i in infos):,} bytes (limit {MAX_TOTAL_BYTES:,})")
    if len(set(names)) != len(names):
        problems.append("duplicate member names")
    if problems:
        raise IntegrityError(problems_message(f"archive {path} refused, nothing extracted", problems))
    return {i.filename: i for i in infos}


def verify_archive(path: Path) -> dict:
    """Check an archive's structure, then every member's sha256 against its manifest.

    Args:
        path: the bundle archive (`OUT.zip`).

    Returns:
        {"bundle": path, "files": count, "status": the manifest's export status}.

    Raises:
        IntegrityError: a hostile or damaged archive, a manifest of the wrong shape, or any
            changed, missing or extra file.
    """
    with _open(path) as archive:
        by_name = _structure(archive, path)
        if MANIFEST not in by_name:
            raise IntegrityError(f"archive {path}: missing {MANIFEST}")
        if by_name[MANIFEST].file_size > MAX_MANIFEST_BYTES:
            raise IntegrityError(f"archive {path}: {MANIFEST} is larger than {MAX_MANIFEST_BYTES:,} bytes")
        manifest = parse_manifest(_read(archive, by_name[MANIFEST]), f"archive {path}")
        listed = manifest["files"]
        problems = [f"extra file: {n}" for n in sorted(set(by_name) - set(listed) - {MANIFEST})]
        for name, meta in sorted(listed.items()):
            if name not in by_name:
                problems.append(f"missing file: {name}")
                continue
            data = _read(archive, by_name[name])
            if len(data) != meta["bytes"] or hashlib.sha256(data).hexdigest() != meta["sha256"]:
                problems.append(f"changed file: {name} (sha256 does not match the manifest)")
        if problems:
            raise IntegrityError(problems_message(f"bundle archive {path} failed verification", problems))
    return {"bundle": str(path), "files": len(listed), "status": manifest.get("status")}
