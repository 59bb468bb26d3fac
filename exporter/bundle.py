"""On-device bundles: written atomically, described by a manifest, verifiable.

A bundle is a directory holding `model.tflite`, `manifest.json`, `report.md` and, when given,
`labels.txt` (plus target files). The manifest carries edgex's format tag and the sha256 and size
of every other file (exporter/manifest.py). Before any work, exporter/output.py checks the output:
only an edgex bundle is ever replaced, and files a user added to it are named (or kept with
`force`). The bundle is built in a temporary sibling directory, fsynced, then swapped into place in
one step (renameat2 with RENAME_EXCHANGE on Linux), so an interrupted export or a full disk never
leaves a half bundle and never damages an earlier bundle at that path. Device runs under `hil/` of
the earlier bundle are carried into the new one.

Example:
    >>> out = write_bundle(Path("build/tiny"), {"model.tflite": tiny_tflite}, {"status": "pass"})
    >>> result = verify_bundle(out)
    >>> result["files"], result["status"], result["runs"]
    (1, 'pass', 0)
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import stat
import zipfile
from pathlib import Path

from exporter.errors import IntegrityError, UsageError
from exporter.manifest import (HIL_DIR, HIL_PREFIX, MANIFEST, MAX_MANIFEST_BYTES, SCHEMA_VERSION, encode,
                               is_hil_run, name_problem, parse_manifest, problems_message, sha256, stamp)
from exporter.output import OutputPlan, check_collisions, check_output, file_kind, folders_of, reason, walk, zip_path
from exporter.safe_read import open_regular, read_bounded
from exporter.session import raise_if_interrupted
from exporter.temps import remove_path, remove_stale_temps, temp_path

__all__ = ["HIL_PREFIX", "MANIFEST", "SCHEMA_VERSION", "read_manifest", "sha256", "verify_bundle", "write_bundle"]

_RENAME_EXCHANGE = 2


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


def write_bundle(out: Path, files: dict[str, bytes], manifest: dict, *, make_zip: bool = False,
                 force: bool = False) -> Path:
    """Write a bundle at `out` atomically, replacing an earlier edgex bundle there.

    Args:
        out: the bundle directory.
        files: relative path → bytes of every file but the manifest.
        manifest: the manifest body; the format tag, versions and `files` are filled in.
        make_zip: also write `out` + ".zip" (atomically), e.g. `android-1.2.zip`.
        force: keep files a user added to the earlier bundle (carried into the new one) instead
            of refusing. Device runs under hil/ are always carried over.

    Returns:
        The bundle path.

    Raises:
        UsageError: `out` cannot or must not be written (see exporter.output.check_output), or
            writing failed (a full or read-only disk: the earlier bundle is untouched).
    """
    out = Path(os.path.abspath(os.fspath(out)))
    if out.parent.is_dir():
        remove_stale_temps(out)                      # first: it may put back a bundle a killed run moved aside
        remove_stale_temps(zip_path(out))
    plan = check_output(out, make_zip, force)
    for name in files:
        if name_problem(name):
            raise ValueError(f"a bundle cannot hold {name_problem(name)}")
    check_collisions(plan.out, plan.carry, files)
    body = encode(stamp(manifest, files))
    try:
        plan.out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create the folder of {plan.out}: {reason(exc)}") from None
    _write(plan, files, body)
    return plan.out


def _write(plan: OutputPlan, files: dict[str, bytes], body: bytes) -> None:
    out, tmp, zip_tmp = plan.out, temp_path(plan.out, "new"), None
    try:
        try:
            _build(tmp, plan, files, body)
            if plan.zip:
                zip_tmp = temp_path(plan.zip, "zip")
                _write_zip(zip_tmp, files, body)
            raise_if_interrupted()           # a signal some library swallowed: stop before the bundle is put in place
            _swap(tmp, out)
        except OSError as exc:
            raise UsageError(f"cannot write the bundle {out}: {reason(exc)}; an earlier bundle there is "
                             "untouched") from None
        try:
            if zip_tmp:
                os.replace(zip_tmp, plan.zip)
                zip_tmp = None
            _fsync_dir(out.parent)
        except OSError as exc:
            raise UsageError(f"the bundle {out} is written, but {plan.zip or out.parent} could not be: "
                             f"{reason(exc)}") from None
    finally:
        if os.path.lexists(tmp):
            remove_path(tmp)                         # after an exchange: the earlier bundle
        if zip_tmp:
            remove_path(zip_tmp)


def _build(tmp: Path, plan: OutputPlan, files: dict[str, bytes], body: bytes) -> None:
    """Fill the new bundle folder `tmp`: its files, the manifest, what is carried over; fsync all."""
    os.mkdir(tmp, 0o777)                             # the umask applies, as for any new folder
    for name, data in files.items():
        _write_file(tmp / name, data)
    _write_file(tmp / MANIFEST, body)
    _carry_over(plan.out, tmp, plan.carry)
    for folder in {tmp} | {tmp / name for name in folders_of([*files, *plan.carry])}:
        _fsync_dir(folder)


def _carry_over(old: Path, new: Path, names: list[str]) -> None:
    """Hard-link (or copy) `names` from the bundle `old` into the new bundle folder `new`.

    Raises:
        OSError: a file cannot be linked or copied (vanished files are skipped).
    """
    for name in names:
        src, dst = old / name, new / name
        try:
            mode = os.lstat(src).st_mode
        except FileNotFoundError:
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        if stat.S_ISDIR(mode):
            dst.mkdir(exist_ok=True)
        elif stat.S_ISLNK(mode):
            os.symlink(os.readlink(src), dst)
        elif stat.S_ISREG(mode):
            try:
                os.link(src, dst, follow_symlinks=False)
            except OSError:
                shutil.copy2(src, dst, follow_symlinks=False)


def _swap(tmp: Path, out: Path) -> None:
    """Put the folder `tmp` at `out`; an earlier bundle at `out` ends up in `tmp` or is removed."""
    if not os.path.lexists(out):
        os.replace(tmp, out)
        return
    if _exchange(tmp, out):
        return
    old = temp_path(out, "old")                      # no renameat2: two renames; the old bundle is never lost
    os.replace(out, old)
    try:
        os.replace(tmp, out)
    except OSError:
        os.replace(old, out)
        raise
    remove_path(old)


def _write_zip(path: Path, files: dict[str, bytes], body: bytes) -> None:
    """Write the bundle's own files (the manifest's list and the manifest) as a zip at `path`."""
    members = {**files, MANIFEST: body}
    with open(path, "xb") as fh:
        with zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED) as archive:
            for name in sorted(members):
                info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o100644 << 16          # a regular file, rw-r--r--
                archive.writestr(info, members[name])
        fh.flush()
        os.fsync(fh.fileno())


def _bundle_mode(bundle: Path) -> int:
    """The st_mode of the path given as a bundle (following a symlink the user named).

    Raises:
        IntegrityError: nothing there.
        UsageError: a path the system cannot look up (too long, a NUL byte, no permission).
    """
    text = str(bundle)
    shown = text if len(text) <= 120 else f"{text[:60]}…{text[-60:]}"
    try:
        return os.stat(bundle).st_mode
    except (FileNotFoundError, NotADirectoryError):
        raise IntegrityError(f"{shown} is not a bundle: no such file or directory") from None
    except OSError as exc:
        raise UsageError(f"cannot use bundle {shown}: {reason(exc)}") from None
    except ValueError:
        raise UsageError(f"cannot use bundle {shown!r}: the path holds a NUL byte") from None


def read_manifest(bundle: Path) -> dict:
    """Read, parse and check a bundle's manifest (a regular file, bounded in size).

    Raises:
        IntegrityError: missing, not a regular file, unparsable, or with fields of the wrong type.
        UsageError: a bundle path the system cannot look up.
    """
    bundle = Path(bundle)
    if not stat.S_ISDIR(_bundle_mode(bundle)):
        raise IntegrityError(f"{bundle} is not a bundle directory")
    try:
        mode = os.lstat(bundle / MANIFEST).st_mode
    except FileNotFoundError:
        raise IntegrityError(f"{bundle}: missing {MANIFEST}") from None
    except OSError as exc:
        raise IntegrityError(f"{bundle}: cannot read {MANIFEST}: {reason(exc)}") from None
    if not stat.S_ISREG(mode):
        raise IntegrityError(f"{bundle}: {MANIFEST} is a {file_kind(mode)}, not a regular file")
    raw = read_bounded(bundle / MANIFEST, limit=MAX_MANIFEST_BYTES, what="manifest", error=IntegrityError)
    return parse_manifest(raw, str(bundle))


def _run_problem(bundle: Path, name: str) -> str | None:
    """Why `hil/<run>.json` is not a device run as `edgex hil report` reads it (None when it is)."""
    from exporter.hil.run_files import read_run

    try:
        read_run(bundle / name)
    except IntegrityError as exc:
        return str(exc)
    return None


def _matches(path: Path, meta: dict) -> bool:
    """True when the regular file at `path` has the size and sha256 the manifest lists."""
    with open_regular(path, what="bundle file", error=IntegrityError) as fh:
        if os.fstat(fh.fileno()).st_size != meta["bytes"]:
            return False
        digest, size = hashlib.sha256(), 0
        try:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
                size += len(chunk)
        except OSError as exc:
            raise IntegrityError(f"cannot read {path}: {reason(exc)}") from None
    return size == meta["bytes"] and digest.hexdigest() == meta["sha256"]


def _unlisted_problems(bundle: Path, entries: dict[str, str], listed: dict) -> tuple[list[str], int]:
    """Problems with what is on disk but not in the manifest, and the number of device runs."""
    problems, runs = [], 0
    holders = folders_of(listed) | {HIL_DIR}
    for name, kind in sorted(entries.items()):
        if name == MANIFEST or name in listed or (kind == "directory" and name in holders):
            continue
        if name.startswith(HIL_PREFIX):
            if kind != "file" and (kind != "directory" or name.endswith(".json")):
                problems.append(f"not a regular file in hil/: {name} ({kind})")
            elif kind == "file" and not is_hil_run(name):
                problems.append(f"unexpected file in hil/: {name}")
            elif kind == "file":
                runs += 1
                problems += filter(None, [_run_problem(bundle, name)])
        elif kind != "directory":
            problems.append(f"extra file: {name}" + ("" if kind == "file" else f" ({kind})"))
    return problems, runs


def verify_bundle(bundle: Path) -> dict:
    """Re-hash every file of a bundle (a directory, or its .zip) against its manifest.

    Nothing but regular files is opened: FIFOs, sockets, devices and symlinks are named, never
    read. Device runs must be regular files `hil/<run>.json` holding a JSON object. Archives
    are checked in memory (exporter/archive.py).

    Args:
        bundle: the bundle folder, or a bundle archive (any regular file is read as a zip).

    Returns:
        {"bundle": path, "files": count, "status": manifest status, "runs": device runs in hil/}.

    Raises:
        IntegrityError: naming every changed, missing or extra file (exit 3).
        UsageError: a bundle path the system cannot look up (too long, a NUL byte; exit 2).
    """
    bundle = Path(bundle)
    if stat.S_ISREG(_bundle_mode(bundle)):
        from exporter.archive import verify_archive

        return verify_archive(bundle)
    manifest = read_manifest(bundle)
    listed = manifest["files"]
    try:
        entries = walk(bundle)
    except OSError as exc:
        raise IntegrityError(f"cannot read bundle {bundle}: {reason(exc)}") from None
    problems, runs = _unlisted_problems(bundle, entries, listed)
    for name, meta in sorted(listed.items()):
        kind = entries.get(name)
        if kind is None:
            problems.append(f"missing file: {name}")
        elif kind == "symlink":
            problems.append(f"symlink not allowed: {name}")
        elif kind != "file":
            problems.append(f"not a regular file: {name} ({kind})")
        elif not _matches(bundle / name, meta):
            problems.append(f"changed file: {name} (sha256 does not match the manifest)")
    if problems:
        raise IntegrityError(problems_message(f"bundle {bundle} failed verification", problems))
    return {"bundle": str(bundle), "files": len(listed), "status": manifest.get("status"), "runs": runs}
