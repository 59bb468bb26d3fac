"""The `ssh://` device: a Linux board (Raspberry Pi, Jetson, ...) reached with paramiko.

URI: `ssh://user@host[:port][/remote_dir]` (remote_dir defaults to /tmp; `/~/dir` is relative to
the home directory). The host key must be in known_hosts (`options.known_hosts`, default
~/.ssh/known_hosts); an unknown key is refused naming its fingerprint unless
`options.accept_unknown_host` (`--accept-unknown-host`), and a changed key is always refused.
The identity and known_hosts files are read and checked before connecting (ssh_files.py:
a missing, binary or garbage file is a UsageError naming it), and paramiko's own log output
(tracebacks from its transport thread) is hidden unless `--debug`.
Files go by SFTP to a private `.edgex-<random>` dir as `<name>.part`, are hashed on the device
and renamed only when the sha256 matches. Commands run under a deadline; on expiry the remote
process group is killed. Every fault is a DeviceError naming the device.

Example:
    >>> parse_uri("ssh://pi@raspberrypi.local:2222/~/edgex")      # user, host, port, remote dir
    ('pi', 'raspberrypi.local', 2222, 'edgex')
    >>> from exporter.hil.transports.base import RunPlan
    >>> options = TransportOptions(identity_file=Path("~/.ssh/id_ed25519"))
    >>> with SshTransport("ssh://pi@raspberrypi.local", options) as t:   # doctest: +SKIP
    ...     raw = t.run_bundle(Path("build/linux"), RunPlan(runs=50))
"""
from __future__ import annotations

import base64
import getpass
import hashlib
import math
import os
import secrets
import shlex
import socket
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import paramiko

from exporter.errors import DeviceError, UsageError
from exporter.hil.transports.base import HostTransport, TransportOptions, register
from exporter.hil.transports.local import sha256_file
from exporter.hil.transports.ssh_files import add_host_keys, load_identity, quiet_paramiko_logging, read_known_hosts

MAX_STREAM_BYTES = 2 << 20      # stdout/stderr kept per stream; the rest is read and dropped
PID_MARK = b"edgex-pid "


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH-style fingerprint: 'SHA256:<base64 without padding>'."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")


class _UnknownHost(Exception):
    def __init__(self, name: str, key: paramiko.PKey):
        super().__init__(name)
        self.key = key


class _RejectUnknown(paramiko.RejectPolicy):
    """Refuse a host whose key is not known, keeping the key to name its fingerprint."""

    def missing_host_key(self, client, hostname, key):
        raise _UnknownHost(hostname, key)


class _AcceptUnknown(paramiko.AutoAddPolicy):
    """Trust an unknown host key (explicit flag); append it only to a known_hosts the user named."""

    def __init__(self, save_to: Path | None):
        self.save_to = save_to
        self.accepted: tuple[str, paramiko.PKey] | None = None

    def missing_host_key(self, client, hostname, key):
        client.get_host_keys().add(hostname, key.get_name(), key)
        self.accepted = (hostname, key)
        if self.save_to is not None:
            fd = os.open(self.save_to, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "a") as f:
                f.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")


def parse_uri(uri: str) -> tuple[str, str, int, str]:
    """(user, host, port, remote_dir) of `ssh://user@host[:port][/remote_dir]`.

    Raises:
        UsageError: not an ssh:// URI, no host, or a bad port.
    """
    parts = urlsplit(uri)
    if parts.scheme != "ssh" or not parts.hostname:
        raise UsageError(f"bad SSH device {uri!r}; expected ssh://user@host[:port][/remote_dir]")
    try:
        port = parts.port or 22
    except ValueError:
        raise UsageError(f"bad port in SSH device {uri!r}") from None
    user = unquote(parts.username) if parts.username else getpass.getuser()
    path = unquote(parts.path)
    if path in ("", "/"):
        remote_dir = "/tmp"
    elif path == "/~" or path.startswith("/~/"):
        remote_dir = path[3:] or "."
    else:
        remote_dir = path.rstrip("/")
    return user, parts.hostname, port, remote_dir


@register
class SshTransport(HostTransport):
    """Runs the agent on a host reached over SSH (paramiko), connecting on creation.

    Args:
        uri: `ssh://user@host[:port][/remote_dir]`.
        options: connect_timeout, retries, known_hosts, accept_unknown_host, identity_file, python.

    Raises:
        UsageError: a bad URI, or an identity or known_hosts file that is missing (identity),
            not a regular file, or not what it should be (checked before connecting).
        DeviceError: unreachable, no banner, refused host key, failed authentication.
    """

    scheme = "ssh"

    def __init__(self, uri: str, options: TransportOptions):
        super().__init__(uri, options)
        quiet_paramiko_logging()
        self.user, self.host, self.port, self.remote_dir = parse_uri(uri)
        self.name = f"{self.user}@{self.host}:{self.port}"
        self._tmp: str | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._identity = load_identity(options.identity_file) if options.identity_file else None
        self.client = self._connect()
        self.host_key = self.client.get_transport().get_remote_server_key()

    # -- connection ---------------------------------------------------------------------------------
    def _connect(self) -> paramiko.SSHClient:
        opts = self.options
        explicit = opts.known_hosts is not None
        known = Path(opts.known_hosts).expanduser() if explicit else Path("~/.ssh/known_hosts").expanduser()
        host_keys = read_known_hosts(known)     # checked once, kept in memory: paramiko never rewrites it
        key_file = str(Path(opts.identity_file).expanduser()) if opts.identity_file else None
        attempts = max(0, int(opts.retries)) + 1
        last = "no attempt"
        for attempt in range(attempts):
            if attempt:
                time.sleep(min(0.5 * 2 ** (attempt - 1), 5.0))
            client = paramiko.SSHClient()
            add_host_keys(client, host_keys)
            accept = _AcceptUnknown(known if explicit else None) if opts.accept_unknown_host else None
            client.set_missing_host_key_policy(accept or _RejectUnknown())
            try:
                client.connect(self.host, self.port, username=self.user, pkey=self._identity,
                               timeout=opts.connect_timeout, banner_timeout=opts.connect_timeout,
                               auth_timeout=opts.connect_timeout, channel_timeout=opts.connect_timeout,
                               allow_agent=key_file is None, look_for_keys=key_file is None)
                client.get_transport().set_keepalive(15)
                return client
            except _UnknownHost as exc:
                client.close()
                raise DeviceError(
                    f"SSH host {exc} ({self.name}) presents an unknown {exc.key.get_name()} host key "
                    f"{fingerprint(exc.key)}, not in {known}. Nothing was sent. Compare it with the device's "
                    f"own (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub on it), then add it to known_hosts "
                    f"or rerun with --accept-unknown-host") from None
            except paramiko.BadHostKeyException as exc:
                client.close()
                entry = self.host if self.port == 22 else f"[{self.host}]:{self.port}"
                raise DeviceError(
                    f"SSH host key of {self.name} CHANGED: it presents {exc.key.get_name()} {fingerprint(exc.key)} "
                    f"but {known} has {fingerprint(exc.expected_key)}. Refusing to connect (a reinstalled device, "
                    f"or someone in the middle). If the device was reinstalled, remove the old key with "
                    f"ssh-keygen -R '{entry}' -f {known}") from None
            except paramiko.AuthenticationException as exc:
                client.close()
                how = f"key {key_file}" if key_file else "the SSH agent and default keys"
                raise DeviceError(f"SSH authentication to {self.name} failed with {how}: {exc}") from None
            except (socket.timeout, TimeoutError, ConnectionError, paramiko.ssh_exception.NoValidConnectionsError,
                    EOFError) as exc:
                client.close()
                last = _describe_socket_error(exc)
            except paramiko.SSHException as exc:
                session = client.get_transport()
                banner = getattr(session, "remote_version", "") if session is not None else ""
                client.close()
                if banner:
                    raise DeviceError(f"SSH to {self.name} ({banner}) failed: {exc}") from None
                last = f"no SSH banner within {opts.connect_timeout:g}s"
            except OSError as exc:
                client.close()
                raise DeviceError(f"cannot reach {self.name}: {exc.strerror or exc}") from None
        raise DeviceError(f"cannot reach SSH device {self.name} after {attempts} attempt(s): {last}")

    # -- commands -----------------------------------------------------------------------------------
    def _exec(self, command: str, timeout: float, *, kill_on_timeout: bool = False) -> tuple[int, bytes, bytes]:
        """Run a shell command under a deadline; outputs bounded. Raises DeviceError on timeout or loss."""
        transport = self.client.get_transport()
        if transport is None or not transport.is_active():
            raise DeviceError(f"SSH connection to {self.name} is closed")
        try:
            channel = transport.open_session(timeout=self.options.connect_timeout)
            channel.settimeout(1.0)
            channel.exec_command(command)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise DeviceError(f"SSH to {self.name}: cannot start a command: {exc}") from None
        out, err, pid, finished = bytearray(), bytearray(), None, False
        deadline = time.monotonic() + timeout
        try:
            while True:
                busy = False
                for ready, recv, sink in ((channel.recv_ready, channel.recv, out),
                                          (channel.recv_stderr_ready, channel.recv_stderr, err)):
                    if ready():
                        chunk = recv(65536)
                        busy = True
                        if len(sink) < MAX_STREAM_BYTES:
                            sink += chunk[:MAX_STREAM_BYTES - len(sink)]
                if pid is None and kill_on_timeout:
                    pid = _take_pid(out)
                if channel.exit_status_ready() and not channel.recv_ready() and not channel.recv_stderr_ready():
                    finished = True
                    return channel.recv_exit_status(), bytes(out), bytes(err)
                if time.monotonic() > deadline:
                    raise DeviceError(f"command on {self.name} timed out after {timeout:g}s"
                                      + ("; killed it" if pid is not None else ""))
                if not transport.is_active():
                    raise DeviceError(f"SSH connection to {self.name} was lost during a command")
                if not busy:
                    time.sleep(0.02)
        except (socket.timeout, OSError, EOFError, paramiko.SSHException) as exc:
            raise DeviceError(f"SSH to {self.name}: command failed: {exc}") from None
        finally:   # timed out, failed or interrupted (Ctrl-C): stop the remote process
            if not finished and pid is not None:
                self._kill(pid)
            channel.close()

    def _kill(self, pid: int) -> None:
        """TERM then KILL the remote process group led by `pid` (best effort, bounded)."""
        command = (f"kill -TERM -- -{pid} {pid} 2>/dev/null; sleep 0.5; "
                   f"kill -KILL -- -{pid} {pid} 2>/dev/null; true")
        try:
            self._exec(command, min(10.0, self.options.connect_timeout + 2))
        except DeviceError:
            pass

    def run(self, argv: list[str], timeout: float) -> tuple[int, bytes, bytes]:
        """Run `argv` in the private dir; after `timeout` s the remote process group is killed.

        The command also runs under coreutils `timeout` when the device has it, so it cannot
        outlive a lost connection for long.
        """
        quoted = shlex.join(argv)
        limit = math.ceil(timeout) + 5
        cd = f"cd {shlex.quote(self._tmp)} || exit 125; " if self._tmp else ""
        command = (f"{cd}echo {PID_MARK.decode()}$$; if command -v timeout >/dev/null 2>&1; "
                   f"then exec timeout -k 5 {limit} {quoted}; else exec {quoted}; fi")
        return self._exec(command, timeout, kill_on_timeout=True)

    # -- files --------------------------------------------------------------------------------------
    def _sftp_client(self) -> paramiko.SFTPClient:
        if self._sftp is None:
            try:
                self._sftp = self.client.open_sftp()
                self._sftp.get_channel().settimeout(max(self.options.connect_timeout, 30.0))
                tmp = f"{self.remote_dir}/.edgex-{secrets.token_hex(8)}"
                self._sftp.mkdir(tmp, mode=0o700)
                self._tmp = tmp
            except (OSError, paramiko.SSHException, EOFError) as exc:
                raise DeviceError(f"SSH to {self.name}: cannot create a temp dir in {self.remote_dir}: {exc}") from None
        return self._sftp

    def _remote_sha256(self, path: str) -> str:
        """sha256 of a file on the device: sha256sum, else Python's hashlib."""
        q = shlex.quote(path)
        py = shlex.quote(self.options.python or "python3")
        command = (f"sha256sum -- {q} 2>/dev/null || {py} -c 'import hashlib,sys; "
                   f"print(hashlib.sha256(open(sys.argv[1],\"rb\").read()).hexdigest())' {q}")
        code, out, err = self._exec(command, max(60.0, self.options.connect_timeout))
        digest = out.decode("utf-8", "replace").split(" ")[0].strip()
        if code != 0 or len(digest) != 64:
            raise DeviceError(f"cannot hash {path} on {self.name} (no sha256sum nor python): "
                              f"{err.decode('utf-8', 'replace').strip()[-200:]}")
        return digest

    def push(self, local: Path, remote_name: str) -> str:
        """Upload `<tmp>/<name>.part`, hash it on the device, rename it if it matches; return the path."""
        if "/" in remote_name or remote_name in ("", ".", ".."):
            raise DeviceError(f"refusing to push to {remote_name!r} on {self.name}")
        sftp = self._sftp_client()
        target = f"{self._tmp}/{remote_name}"
        part = target + ".part"
        try:
            sftp.put(str(local), part, confirm=True)
            expected, actual = sha256_file(Path(local)), self._remote_sha256(part)
            if actual != expected:
                raise DeviceError(f"upload of {remote_name} to {self.name} is corrupt (sha256 {actual} on the device, "
                                  f"{expected} here); removed it")
            sftp.posix_rename(part, target)
        except BaseException as exc:
            try:
                sftp.remove(part)
            except (OSError, paramiko.SSHException, EOFError):
                pass
            if isinstance(exc, (OSError, paramiko.SSHException, EOFError)):
                raise DeviceError(f"upload of {remote_name} to {self.name} failed: {exc}") from None
            raise
        return target

    # -- lifecycle ----------------------------------------------------------------------------------
    def describe(self) -> dict:
        return {"transport": "ssh", "id": self.name, "host_key_sha256": fingerprint(self.host_key),
                "host_key_type": self.host_key.get_name()}

    def close(self) -> None:
        """Remove the remote temp dir (bounded), then close SFTP and the connection."""
        if self._tmp and "/.edgex-" in self._tmp:
            try:
                self._exec(f"rm -rf -- {shlex.quote(self._tmp)}", min(30.0, self.options.connect_timeout + 5))
            except DeviceError:
                pass
            self._tmp = None
        if self._sftp is not None:
            self._sftp.close()
            self._sftp = None
        self.client.close()


def _describe_socket_error(exc: BaseException) -> str:
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
        return "connection refused"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "connection timed out"
    if isinstance(exc, EOFError):
        return "the server closed the connection"
    return str(exc) or type(exc).__name__


def _take_pid(out: bytearray) -> int | None:
    """Find and remove the `edgex-pid N` line the wrapper prints first (a login banner may precede it)."""
    start = out.find(PID_MARK)
    end = out.find(b"\n", start)
    if start < 0 or end < 0 or start > 4096:
        return None
    try:
        pid = int(out[start + len(PID_MARK):end])
    except ValueError:
        return None
    del out[start:end + 1]
    return pid
