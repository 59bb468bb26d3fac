"""Verifying a bundle archive (`OUT.zip`) in memory, refusing hostile archives before reading them.

Refused (IntegrityError, exit 3) before any member is read: absolute paths, `..` segments,
backslashes and drive letters, symlinks and other non-regular entries, duplicate names, more
than MAX_MEMBERS members, a declared total above MAX_TOTAL_BYTES, and any member whose declared
size is more than MAX_RATIO times its compressed size (zip bombs). Nothing is ever extracted:
members are read with a size bound and hashed against the archive's own manifest.

Example:
    >>> verify_archive(Path("build/android.zip"))["files"]
    6
"""
from __future__ import annotations

import hashlib
import json
import stat
import zipfile
from pathlib import Path, PurePosixPath

from exporter.errors import IntegrityError

MAX_MEMBERS = 10_000
MAX_TOTAL_BYTES = 4 << 30
MAX_RATIO = 200
MANIFEST = "manifest.json"


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
    if info.compress_size and info.file_size / info.compress_size > MAX_RATIO:
        return f"{name!r} expands {info.file_size / info.compress_size:.0f}x (limit {MAX_RATIO}x): refusing a zip bomb"
    return None


def _read(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    with archive.open(info) as fh:
        data = fh.read(info.file_size + 1)
    if len(data) != info.file_size:
        raise IntegrityError(f"{info.filename!r} does not hold the size its header declares")
    return data


def verify_archive(path: Path) -> dict:
    """Check an archive's structure, then every member's sha256 against its manifest.

    Raises:
        IntegrityError: a hostile or damaged archive, or any changed, missing or extra file.
    """
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise IntegrityError(f"{path}: not a readable zip archive: {exc}") from None
    with archive:
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
            raise IntegrityError(f"archive {path} refused, nothing extracted:\n  " + "\n  ".join(problems))
        by_name = {i.filename: i for i in infos}
        if MANIFEST not in by_name:
            raise IntegrityError(f"archive {path}: missing {MANIFEST}")
        try:
            listed = json.loads(_read(archive, by_name[MANIFEST]))["files"]
        except (ValueError, KeyError, TypeError):
            raise IntegrityError(f"archive {path}: {MANIFEST} is not a valid manifest") from None
        problems = [f"extra file: {n}" for n in sorted(set(by_name) - set(listed) - {MANIFEST})]
        for name, meta in sorted(listed.items()):
            if name not in by_name:
                problems.append(f"missing file: {name}")
            elif hashlib.sha256(_read(archive, by_name[name])).hexdigest() != meta.get("sha256"):
                problems.append(f"changed file: {name} (sha256 does not match the manifest)")
        if problems:
            raise IntegrityError(f"bundle archive {path} failed verification:\n  " + "\n  ".join(problems))
    return {"bundle": str(path), "files": len(listed), "status": None}
