"""Temp files beside an output: names that say exactly whose they are, and safe clean-up.

Temp names are `.edgex-tmp-<key>.<pid>.<tag>-<random>`. `key` is the output's own name, or, when
that would overflow the file system's name limit (255 bytes), its start plus `~` and a sha256
prefix of the whole name, so any valid output name works. `pid` is the writing process. The last
two dot-separated fields never contain a dot, so the owner of a temp is read back exactly:
`android` never claims `android-lowend`'s temps, nor `android.zip`'s. A temp is removed as stale
only when its key matches exactly and its process is gone.

Example:
    >>> temp_path(Path("build/android"), "new").name.startswith(f".edgex-tmp-android.{os.getpid()}.new-")
    True
"""
from __future__ import annotations

import hashlib
import os
import secrets
import shutil
from pathlib import Path

TMP_PREFIX = ".edgex-tmp-"
_TAIL_BYTES = 1 + 10 + 1 + 16          # ".<pid>.<tag>-<random>": pids up to 10 digits, tags up to 16 bytes


def name_max(folder: Path) -> int:
    """The longest file name (bytes) the file system of `folder` takes; 255 when unknown."""
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def _key(name: str, limit: int = 255) -> str:
    raw = os.fsencode(name)
    room = limit - len(TMP_PREFIX) - _TAIL_BYTES
    if len(raw) <= room:
        return name
    digest = hashlib.sha256(raw).hexdigest()[:16]
    return os.fsdecode(raw[:room - len(digest) - 1]) + "~" + digest


def temp_path(target: Path, tag: str) -> Path:
    """A new temp path beside `target`, owned by this process.

    Args:
        target: the bundle folder or archive the temp belongs to.
        tag: a short word without dots ("new", "old", "zip", "probe"), at most 7 bytes.

    Returns:
        `.edgex-tmp-<key>.<pid>.<tag>-<8 hex digits>` in the folder of `target`.
    """
    target = Path(target)
    key = _key(target.name, name_max(target.parent))
    return target.with_name(f"{TMP_PREFIX}{key}.{os.getpid()}.{tag}-{secrets.token_hex(4)}")


def _owner(entry: str) -> tuple[str, int] | None:
    if not entry.startswith(TMP_PREFIX):
        return None
    parts = entry[len(TMP_PREFIX):].rsplit(".", 2)
    if len(parts) != 3 or not parts[1].isdigit() or "-" not in parts[2]:
        return None
    return parts[0], int(parts[1])


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:             # EPERM: alive, another user's
        return True
    return True


def remove_stale_temps(target: Path) -> None:
    """Remove temps left beside `target` by a dead edgex process writing that exact target.

    Temps of other outputs (`android-lowend` for `android`) and of live processes are left alone.
    An earlier bundle a killed process had moved aside (where renameat2 is missing) is put back
    when nothing is at `target`. Leftovers of older edgex versions with exact names
    (`.edgex-tmp-NAME`, their zip temp, and `.edgex-tmp-NAME-old`) are removed too.
    """
    target = Path(target)
    key = _key(target.name, name_max(target.parent))
    legacy = {f"{TMP_PREFIX}{target.name}", f"{TMP_PREFIX}{target.name}-old"}
    try:
        names = os.listdir(target.parent)
    except OSError:
        return
    for name in names:
        owner = _owner(name)
        if name in legacy or (owner is not None and owner[0] == key and not _alive(owner[1])):
            _restore_or_remove(target.parent / name, target)


def _restore_or_remove(temp: Path, target: Path) -> None:
    """An earlier bundle moved aside (`old-` temp) while its target is missing is put back, else removed."""
    if temp.name.rsplit(".", 1)[-1].startswith("old-") and not os.path.lexists(target):
        try:
            os.replace(temp, target)
            return
        except OSError:
            pass
    remove_path(temp)


def remove_path(path: Path) -> None:
    """Remove a file, symlink or folder tree; a missing path is fine, other errors are ignored."""
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)
    except OSError:
        pass
