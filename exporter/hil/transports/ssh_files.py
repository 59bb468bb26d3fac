"""What the SSH transport reads before it connects (identity, known_hosts), and paramiko's logging.

Both files come from the user and are checked before any connection is made: each must be a
regular file (a FIFO is never opened for reading, a directory is named as one) of bounded size.
An identity must be a private key paramiko can load (OpenSSH or PEM; ed25519, ecdsa or rsa;
not encrypted); a known_hosts file must be UTF-8 text whose every entry line has the
`names keytype base64-key` form. Anything else is a UsageError (exit 2) naming the file.

paramiko logs the tracebacks of its transport thread (e.g. a server that sends no banner) to
the `paramiko` logger, which Python prints on stderr when nothing else handles it.
`quiet_paramiko_logging()` sends them nowhere unless edgex runs with `--debug`; API users who
want them can set `exporter.progress.set_debug(True)` or configure the `paramiko` logger after
the transport is created.

Example:
    >>> key = paramiko.ECDSAKey.generate()                  # stands in for ~/.ssh/id_ecdsa
    >>> key.write_private_key_file("id_ecdsa")
    >>> load_identity(Path("id_ecdsa")).get_name()
    'ecdsa-sha2-nistp256'
    >>> _ = Path("known_hosts").write_text(f"raspberrypi.local {key.get_name()} {key.get_base64()}")
    >>> [entry.hostnames for entry in read_known_hosts(Path("known_hosts"))]
    [['raspberrypi.local']]
    >>> read_known_hosts(Path("no_such_file"))                # a missing known_hosts has no entries
    []
    >>> load_identity(Path("known_hosts"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    exporter.errors.UsageError: identity file known_hosts is not an SSH private key edgex can read (...)
"""
from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import paramiko
from paramiko.hostkeys import HostKeyEntry

from exporter.errors import UsageError
from exporter.progress import _settings

MAX_IDENTITY_BYTES = 1 << 20
MAX_KNOWN_HOSTS_BYTES = 16 << 20
_NULL_HANDLER = logging.NullHandler()


def quiet_paramiko_logging() -> None:
    """Silence the `paramiko` logger unless debug mode is on (then restore it).

    Returns:
        None. In debug mode records propagate as usual (Python prints warnings and errors).
    """
    logger = logging.getLogger("paramiko")
    if _settings.get("debug"):
        if _NULL_HANDLER in logger.handlers:
            logger.removeHandler(_NULL_HANDLER)
            logger.propagate = True
        return
    if _NULL_HANDLER not in logger.handlers:
        logger.addHandler(_NULL_HANDLER)
    logger.propagate = False


def _read_regular(path: Path, what: str, limit: int) -> bytes | None:
    """The bytes of a regular file of at most `limit` bytes; None when the file does not exist.

    Raises:
        UsageError: not a regular file, unreadable, or too large.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as f:
        mode = os.fstat(f.fileno()).st_mode
        if not stat.S_ISREG(mode):
            kind = "a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "not a regular file"
            raise UsageError(f"{what} {path} is {kind}; give a regular file")
        try:
            data = f.read(limit + 1)
        except OSError as exc:
            raise UsageError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise UsageError(f"{what} {path} is larger than {limit:,} bytes; it is not an SSH {what}")
    return data


def load_identity(path: Path) -> paramiko.PKey:
    """Load the private key given with `--identity`, before any connection.

    Args:
        path: the key file (`~` is expanded).

    Returns:
        The key (with its `-cert.pub` certificate when one lies beside it).

    Raises:
        UsageError: missing, not a regular file, too large, encrypted, or not a private key.
    """
    path = Path(path).expanduser()
    data = _read_regular(path, "identity file", MAX_IDENTITY_BYTES)
    if data is None:
        raise UsageError(f"identity file {path} does not exist")
    if not data.strip():
        raise UsageError(f"identity file {path} is empty")
    try:
        return paramiko.PKey.from_path(path)
    except Exception:   # noqa: BLE001 - outside bytes: try paramiko's older per-class loaders next
        pass
    encrypted = False
    for cls in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return cls.from_private_key_file(str(path))
        except paramiko.PasswordRequiredException:
            encrypted = True
        except Exception:   # noqa: BLE001 - garbage makes the loaders fail in many ways
            continue
    if encrypted:
        raise UsageError(f"identity file {path} is encrypted: add it to ssh-agent (ssh-add {path}) and "
                         "leave out --identity")
    raise UsageError(f"identity file {path} is not an SSH private key edgex can read "
                     "(OpenSSH or PEM format; ed25519, ecdsa or rsa)")


def _entry(line: str) -> tuple[bool, HostKeyEntry | None]:
    """Parse a known_hosts line of the form `[@marker] names keytype base64-key`.

    Returns:
        (whether the line has that form, the entry paramiko uses or None). Lines with a marker
        (@cert-authority, @revoked) or a key type paramiko lacks are well-formed but unused.
    """
    marker = line.startswith("@")
    body = line.split(None, 1)[1] if marker and len(line.split(None, 1)) == 2 else line
    if "\0" in line or len(body.split()) < 3:
        return False, None
    try:
        entry = HostKeyEntry.from_line(" ".join(body.split()))
    except Exception:   # noqa: BLE001 - bad base64, or key bytes that do not parse
        return False, None
    return True, None if marker else entry


def read_known_hosts(path: Path) -> list[HostKeyEntry]:
    """Read and check a known_hosts file; a missing file has no entries.

    Args:
        path: the known_hosts file.

    Returns:
        The entries paramiko can use (lines with other key types or markers are skipped).

    Raises:
        UsageError: not a regular file, too large, not UTF-8 text, or a line that is not a
            known_hosts entry (naming the line number).
    """
    data = _read_regular(path, "known_hosts file", MAX_KNOWN_HOSTS_BYTES)
    if data is None:
        return []
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"known_hosts file {path} is not text (not UTF-8); is it the right file?") from None
    entries = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        well_formed, entry = _entry(line)
        if not well_formed:
            raise UsageError(f"known_hosts file {path}, line {number}: not a known_hosts entry "
                             "(expected: host[,host...] keytype base64-key)")
        if entry is not None:
            entries.append(entry)
    return entries


def add_host_keys(client: paramiko.SSHClient, entries: list[HostKeyEntry]) -> None:
    """Give a client the host keys read by `read_known_hosts` (kept in memory, never saved)."""
    keys = client.get_host_keys()
    for entry in entries:
        for name in entry.hostnames:
            keys.add(name, entry.key.get_name(), entry.key)
