"""Where a bundle goes: every output problem is found before any work.

`check_output(out, make_zip, force)` runs first in `exporter.api.export`, before a model is
loaded. It refuses (UsageError, exit 2) an output edgex cannot or must not write:

- a path or name too long, a NUL in it, or a parent that is a file;
- a parent folder that is not writable (checked with os.access and by creating and removing a
  probe file, so read-only mounts are caught too);
- an `--out` that exists and is not an edgex bundle: a bundle is a folder whose manifest carries
  edgex's format tag (exporter/manifest.py) and whose file list matches the files on disk. A
  folder with someone else's manifest.json, an older edgex manifest without the tag, a file, a
  symlink or any non-empty folder without a manifest is never replaced;
- files a user added inside a real bundle (not in its manifest, not device runs under hil/):
  named in the refusal; with `force` they are kept (carried into the new bundle, never deleted);
- `--zip` with an `--out` already ending in .zip, or a zip target (`OUT` + `.zip`) that is a
  folder or a file other than an edgex bundle archive.

Device runs (`hil/<run>.json`) of the bundle being replaced are always carried over. Temp names
are in exporter/temps.py.

Example:
    >>> plan = check_output("build/android", make_zip=True)
    >>> plan.zip.name
    'android.zip'
"""
from __future__ import annotations

import errno
import os
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from exporter.archive import ZIP_ERRORS
from exporter.errors import IntegrityError, UsageError
from exporter.manifest import HIL_DIR, MANIFEST, MAX_MANIFEST_BYTES, is_hil_run, parse_manifest
from exporter.option_names import option
from exporter.safe_read import read_bounded
from exporter.temps import name_max, remove_path, temp_path

_PATH_MAX = 4096
_PATH_ROOM = 256                       # bytes kept free below PATH_MAX for the bundle's own files
_MAX_ENTRIES = 100_000
_SHOWN = 8                             # names listed in a refusal


@dataclass
class OutputPlan:
    """What writing a bundle at `out` involves, as found by `check_output`.

    Attributes:
        out: the absolute bundle path.
        zip: the archive path (`out` + ".zip"), or None.
        carry: relative paths in the existing bundle to carry into the new one (device runs,
            and with `force` the files a user added).
    """

    out: Path
    zip: Path | None = None
    carry: list[str] = field(default_factory=list)


def zip_path(out: Path) -> Path:
    """The archive of bundle `out`: its full name plus `.zip` (`android-1.2` → `android-1.2.zip`)."""
    out = Path(out)
    return out.with_name(out.name + ".zip")


def file_kind(mode: int) -> str:
    """A word for the type of a file from its st_mode ("file", "directory", "symlink", "fifo", ...)."""
    for test, word in ((stat.S_ISREG, "file"), (stat.S_ISDIR, "directory"), (stat.S_ISLNK, "symlink"),
                       (stat.S_ISFIFO, "fifo"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device")):
        if test(mode):
            return word
    return "special file"


def walk(root: Path, limit: int = _MAX_ENTRIES) -> dict[str, str]:
    """Every entry under `root`, never following symlinks: relative POSIX path → `file_kind`.

    Raises:
        OSError: a folder cannot be read, or more than `limit` entries (EFBIG).
    """
    entries: dict[str, str] = {}
    stack = [("", os.fspath(root))]
    while stack:
        prefix, folder = stack.pop()
        with os.scandir(folder) as it:
            for entry in it:
                kind = file_kind(entry.stat(follow_symlinks=False).st_mode)
                entries[prefix + entry.name] = kind
                if kind == "directory":
                    stack.append((prefix + entry.name + "/", entry.path))
                if len(entries) > limit:
                    raise OSError(errno.EFBIG, f"more than {limit:,} files under {root}")
    return entries


def reason(exc: OSError) -> str:
    """A phrase for an OSError, starting lower-case ("no space left on device", "read-only file system")."""
    text = exc.strerror or str(exc)
    return text[:1].lower() + text[1:]


# -- checks ------------------------------------------------------------------------------------

def check_output(out, make_zip: bool = False, force: bool = False) -> OutputPlan:
    """Find every problem with writing a bundle at `out` before any work is done.

    Args:
        out: the bundle folder (`--out`).
        make_zip: also write `out` + ".zip".
        force: keep files a user added inside an existing bundle instead of refusing.

    Returns:
        The OutputPlan: absolute paths and the files to carry over.

    Raises:
        UsageError: the output cannot or must not be written (exit 2); nothing is changed.
    """
    out = Path(os.path.abspath(os.fspath(out)))
    folder = _check_path(out)
    _probe(folder, out)
    plan = OutputPlan(out=out)
    if make_zip:
        if out.name.lower().endswith(".zip"):
            instead = out.with_name(out.name[:-4]) if len(out.name) > 4 else "NAME"
            raise UsageError(f"{option('out', out)} already ends in .zip; {option('make_zip')} writes OUT.zip beside "
                             f"the folder OUT, so give {option('out', instead)} instead")
        plan.zip = zip_path(out)
        _check_name(plan.zip, name_max(folder))
        _check_zip_target(plan.zip)
    plan.carry = _existing_bundle(out, force)
    return plan


def _check_name(path: Path, limit: int) -> None:
    size = len(os.fsencode(path.name))
    if size > limit:
        raise UsageError(f"the name {path.name[:40]}… in {option('out')} is {size} bytes, over this file system's "
                         f"limit of {limit}; choose a shorter name")


def _check_path(out: Path) -> Path:
    text = os.fspath(out)
    if "\0" in text:
        raise UsageError(f"{option('out')} contains a NUL byte")
    if out.name in ("", ".", ".."):
        raise UsageError(f"{option('out', out)}: give the bundle folder a name")
    size = len(os.fsencode(text))
    if size + _PATH_ROOM > _PATH_MAX:
        raise UsageError(f"{option('out')} is a path of {size:,} bytes; paths of bundles must stay under "
                         f"{_PATH_MAX - _PATH_ROOM:,} bytes: choose a shorter one")
    folder = out.parent
    while True:                                   # the nearest existing ancestor must be a folder
        try:
            st = os.stat(folder)
        except (FileNotFoundError, NotADirectoryError):
            folder = folder.parent
            continue
        except OSError as exc:
            if exc.errno == errno.ENAMETOOLONG:   # named below, with the limit
                folder = folder.parent
                continue
            raise UsageError(f"{option('out', out)}: cannot use {folder}: {reason(exc)}") from None
        if not stat.S_ISDIR(st.st_mode):
            raise UsageError(f"{option('out', out)}: {folder} is a {file_kind(st.st_mode)}, not a folder")
        break
    limit = name_max(folder)
    for part in out.parts[1:]:
        if len(os.fsencode(part)) > limit:
            _check_name(Path(part), limit)
    return folder


def _probe(folder: Path, out: Path) -> None:
    """Create and remove a file in `folder`: catches read-only mounts that os.access misses for root."""
    probe = folder / temp_path(out, "probe").name
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as exc:
        raise UsageError(f"{option('out', out)}: cannot write in {folder}: {reason(exc)}") from None
    remove_path(probe)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{option('out', out)}: cannot write in {folder}: not writable")


def _check_zip_target(path: Path) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise UsageError(f"{option('make_zip')}: cannot use {path}: {reason(exc)}") from None
    if not stat.S_ISREG(st.st_mode):
        raise UsageError(f"{option('make_zip')} would replace {path}, which is a {file_kind(st.st_mode)}; refusing")
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo(MANIFEST)
            if info.file_size > MAX_MANIFEST_BYTES:
                raise IntegrityError(f"its {MANIFEST} is larger than {MAX_MANIFEST_BYTES:,} bytes")
            with archive.open(info) as fh:
                parse_manifest(fh.read(MAX_MANIFEST_BYTES + 1), "its", require_tag=True)
        return
    except IntegrityError as exc:
        problem = str(exc).replace("its: ", "its ", 1)
    except ZIP_ERRORS as exc:
        problem = f"not a readable zip holding a {MANIFEST}: {type(exc).__name__}"
    raise UsageError(f"{option('make_zip')} would replace {path}, which is not an edgex bundle archive ({problem}); "
                     f"refusing: move it away or choose another {option('out')}")


def _old_manifest(out: Path) -> dict | None:
    """The manifest of the edgex bundle at `out`; None for an empty folder."""
    path = out / MANIFEST
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        with os.scandir(out) as it:
            if next(it, None) is None:
                return None
        raise UsageError(f"{option('out', out)} is a non-empty folder that is not an edgex bundle (no {MANIFEST}); "
                         "refusing to replace it") from None
    if not stat.S_ISREG(st.st_mode):
        raise UsageError(f"{option('out', out)} is not an edgex bundle (its {MANIFEST} is a {file_kind(st.st_mode)}); "
                         "refusing to replace it")
    raw = read_bounded(path, limit=MAX_MANIFEST_BYTES, what="manifest", error=UsageError)
    try:
        return parse_manifest(raw, option("out", out), require_tag=True)
    except IntegrityError as exc:
        raise UsageError(f"{exc}; it is not an edgex bundle, so it is never replaced: choose another "
                         f"{option('out')}, or delete it yourself") from None


def _shown(names: list[str]) -> str:
    more = f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else ""
    return ", ".join(names[:_SHOWN]) + more


def _added(entries: dict[str, str], listed: dict) -> list[str]:
    """Entries a user added: not listed, not the manifest, not device runs, not folders of those."""
    explained = set(listed) | {MANIFEST} | {n for n, k in entries.items() if k == "file" and is_hil_run(n)}
    holders = {HIL_DIR} | folders_of(entries) | folders_of(listed)
    return sorted(n for n, k in entries.items()
                  if n not in explained and not (k == "directory" and n in holders))


def _existing_bundle(out: Path, force: bool) -> list[str]:
    """Check the bundle already at `out`; return what to carry into the new one."""
    try:
        st = os.lstat(out)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise UsageError(f"{option('out', out)}: {reason(exc)}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise UsageError(f"{option('out', out)} exists and is a {file_kind(st.st_mode)}, not a bundle folder; "
                         "refusing to replace it")
    try:
        manifest = _old_manifest(out)
        if manifest is None:
            return []
        entries = walk(out)
    except OSError as exc:
        raise UsageError(f"{option('out', out)}: cannot read the existing bundle: {reason(exc)}") from None
    listed = manifest["files"]
    runs = sorted(n for n, k in entries.items() if k == "file" and is_hil_run(n))
    added = _added(entries, listed)
    missing = sorted(n for n in listed if entries.get(n) != "file")
    special = [f"{n} ({entries[n]})" for n in added if entries[n] not in ("file", "directory", "symlink")]
    if special:
        raise UsageError(f"{option('out', out)} is an edgex bundle holding files edgex cannot keep: {_shown(special)}; "
                         "move them away first")
    if (added or missing) and not force:
        parts = [f"files that are not part of it: {_shown(added)}"] if added else []
        parts += [f"changes to its own files (missing or not regular: {_shown(missing)})"] if missing else []
        raise UsageError(f"{option('out', out)} is an edgex bundle with {' and '.join(parts)}. Move them away, or "
                         f"pass {option('force')} to replace the bundle while keeping added files (they are carried "
                         "into the new bundle, never deleted; `edgex verify` will still name them)")
    return runs + (added if force else [])


def folders_of(names) -> set[str]:
    """Every proper ancestor folder of `names` ("agent" for "agent/edgex_agent.py")."""
    return {"/".join(n.split("/")[:i]) for n in names for i in range(1, n.count("/") + 1)}


def check_collisions(old: Path, carry: list[str], files: dict) -> None:
    """Refuse keeping a user's file where the new bundle writes one of its own.

    Args:
        old: the bundle being replaced.
        carry: what `check_output` decided to carry over.
        files: relative path → bytes of the new bundle (its manifest aside).

    Raises:
        UsageError: naming the files, which stay untouched.
    """
    ours = set(files) | {MANIFEST}
    our_folders = folders_of(ours)
    clash = []
    for name in carry:
        try:
            is_dir = stat.S_ISDIR(os.lstat(old / name).st_mode)
        except OSError:
            continue
        if name in ours or folders_of([name]) & ours or (name in our_folders and not is_dir):
            clash.append(name)
    if clash:
        raise UsageError(f"the new bundle writes {_shown(clash)}, where you added a file to the old one; move it "
                         "away first (nothing was changed)")
