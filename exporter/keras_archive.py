"""`.keras` archives from outside: checked member by member, then copied with bounded reads.

Before tf_keras (or anything else) opens a `.keras` archive, every member is checked: only
`config.json`, `metadata.json`, `model.weights.h5|npz` and `assets/...`; no `..`, absolute paths,
backslashes, symlinks, encryption or unusual compression; member count, declared total and
expansion ratio bounded (zip bombs). The members are then re-written into a private copy, each
read stopping at its declared size, so a lying header cannot expand further. Loaders open that copy.

Example:
    >>> import json
    >>> config, metadata = checked_copy(demo.model_path, tmp / "model.keras")   # the demo's model.keras
    >>> json.loads(config)["class_name"], json.loads(config)["config"]["name"]
    ('Sequential', 'digits_cnn')
"""
from __future__ import annotations

import os
import stat
import struct
import zipfile
import zlib
from pathlib import Path

from exporter.errors import ModelFileError, UnsafeModelError

__all__ = ["checked_copy", "open_regular", "show"]

MAX_CONFIG_BYTES = 64 << 20
_MAX_METADATA_BYTES = 1 << 20
_MAX_MEMBERS, _MAX_TOTAL_BYTES = 1000, 4 << 30
_MAX_RATIO, _RATIO_FROM = 200, 1 << 20     # expansion limit, checked for members above 1 MiB
_CHUNK = 1 << 20
_MEMBERS = ("config.json", "metadata.json", "model.weights.h5", "model.weights.npz")
# What zipfile and zlib raise on damaged archives (RuntimeError: encrypted; EOFError: truncated).
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, RuntimeError, NotImplementedError,
               ValueError, KeyError, IndexError, OverflowError, struct.error, zlib.error)


def show(path) -> str:
    text = os.fspath(path)
    return text if len(text) <= 200 else f"{text[:100]}...{text[-60:]} ({len(text)} characters)"


def open_regular(path: Path):
    """Open a regular, non-empty file for reading (never blocks on a FIFO)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise ModelFileError(f"cannot open model file {show(path)}: {e.strerror or e}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_size == 0:
        os.close(fd)
        what = "model file is empty" if stat.S_ISREG(info.st_mode) else "not a regular file"
        raise ModelFileError(f"{what}: {show(path)}")
    return os.fdopen(fd, "rb")


def checked_copy(path: Path, copy: Path) -> tuple[bytes, bytes]:
    """Check a .keras archive's members, copy them with bounded reads; return config, metadata."""
    kept = {"config.json": b"", "metadata.json": b"{}"}
    try:
        with open_regular(path) as fh:
            if not zipfile.is_zipfile(fh):
                raise ModelFileError(f"{show(path)} is not a valid .keras archive (not a zip file)")
            with zipfile.ZipFile(fh) as zin:
                members = _checked_members(zin, path)   # refuses before anything is written
                with zipfile.ZipFile(copy, "w") as zout:
                    kept.update({i.filename: _copy_member(zin, zout, i, path) for i in members})
    except _ZIP_ERRORS as e:
        raise ModelFileError(f"{show(path)} is not a valid .keras archive ({e})") from e
    except OSError as e:
        raise ModelFileError(f"cannot read {show(path)} or write its checked copy: {e.strerror or e}") from e
    return kept["config.json"], kept["metadata.json"]


def _checked_members(zin: zipfile.ZipFile, path: Path) -> list[zipfile.ZipInfo]:
    """The file members to copy, after refusing hostile names, types, sizes and ratios."""
    infos = zin.infolist()
    problems = [p for p in map(_member_problem, infos[:_MAX_MEMBERS + 1]) if p]
    names = [i.filename for i in infos]
    if len(infos) > _MAX_MEMBERS:
        problems.append(f"{len(infos)} members (limit {_MAX_MEMBERS})")
    if len(set(names)) != len(names):
        problems.append("duplicate member names")
    total = sum(i.file_size for i in infos)
    if total > _MAX_TOTAL_BYTES:
        problems.append(f"declares {total:,} bytes (limit {_MAX_TOTAL_BYTES:,})")
    if problems:
        raise UnsafeModelError(f"refusing to load {show(path)}: unsafe .keras archive, nothing was "
                               f"extracted: {'; '.join(problems[:5])}")
    if "config.json" not in names:
        raise ModelFileError(f"{show(path)} is not a valid .keras archive (no config.json)")
    limits = {"config.json": MAX_CONFIG_BYTES, "metadata.json": _MAX_METADATA_BYTES}
    for info in infos:
        if info.file_size > limits.get(info.filename, _MAX_TOTAL_BYTES):
            raise ModelFileError(f"{show(path)}: {info.filename} is larger than "
                                 f"{limits[info.filename] >> 20} MiB")
    return [i for i in infos if not i.is_dir()]


def _member_problem(info: zipfile.ZipInfo) -> str | None:
    name, kind = info.filename, stat.S_IFMT(info.external_attr >> 16)
    parts = name.split("/")
    in_assets = len(parts) > 1 and parts[0] == "assets" and all(p not in ("", ".", "..") for p in parts[1:-1])
    if name not in _MEMBERS and not (in_assets and parts[-1] not in (".", "..")):
        return (f"unexpected member {name[:80]!r} (a .keras holds only {', '.join(_MEMBERS)} "
                "and assets/...)")
    if "\\" in name or "\0" in name or (parts[-1] == "" and not info.is_dir()):
        return f"bad member name {name[:80]!r}"
    if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
        return f"{name[:80]!r} is not a regular file (symlink or device)"
    if info.flag_bits & 0x1:
        return f"{name[:80]!r} is encrypted"
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        return f"{name[:80]!r} uses compression method {info.compress_type} (only stored and deflate)"
    if info.file_size > _RATIO_FROM and info.file_size > _MAX_RATIO * max(info.compress_size, 1):
        return (f"{name[:80]!r} expands {info.file_size / max(info.compress_size, 1):.0f}x "
                f"(limit {_MAX_RATIO}x): a zip bomb")
    return None


def _copy_member(zin: zipfile.ZipFile, zout: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> bytes:
    """Copy one member, never reading more than it declares; return it if it is a small JSON."""
    keep, left = info.filename in ("config.json", "metadata.json"), info.file_size
    kept = bytearray()
    with zin.open(info) as src, zout.open(zipfile.ZipInfo(info.filename), "w", force_zip64=True) as dst:
        while chunk := src.read(min(_CHUNK, left + 1)):
            left -= len(chunk)
            if left < 0:
                break
            dst.write(chunk)
            if keep:
                kept += chunk
    if left != 0:
        raise UnsafeModelError(f"refusing to load {show(path)}: member {info.filename[:80]!r} does not "
                               "hold the size its header declares (a lying zip header)")
    return bytes(kept)
