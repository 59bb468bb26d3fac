"""SSH inputs from the user (identity, known_hosts) and paramiko's own output.

Bad key files are usage errors (exit 2) naming the file, found before any connection; a server
that sends no banner gives one line on stderr, never paramiko's thread tracebacks (without --debug).
"""
from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
from contextlib import contextmanager
from dataclasses import replace

import pytest

from exporter.errors import UsageError
from exporter.hil.transports import ssh_files
from exporter.hil.transports.ssh import SshTransport
from exporter.progress import _settings
from tests.hil.test_ssh import options, uri
from tests.test_cli import run

pytestmark = pytest.mark.timeout(120)


@contextmanager
def silent_server():
    """A TCP server on 127.0.0.1 that accepts connections and never sends a byte; yields (port, held)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    held, stop = [], threading.Event()

    def accept():
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], held
    finally:
        stop.set()
        thread.join(timeout=2)
        for conn in held:
            conn.close()
        listener.close()


def hil_run_args(bundle, port, *extra):
    return ["hil", "run", str(bundle), "--device", f"ssh://nobody@127.0.0.1:{port}/tmp", "--retries", "0",
            "--connect-timeout", "1", *extra]


@pytest.fixture
def key_files(tmp_path, sshd):
    """Hostile key files: name -> path."""
    files = {"binary": os.urandom(3000), "text": b"this is not a key\n", "empty": b"",
             "public": sshd.client_key.with_suffix(".pub").read_bytes()}
    paths = {}
    for name, data in files.items():
        paths[name] = tmp_path / f"{name}_key"
        paths[name].write_bytes(data)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "secret", "-f", str(tmp_path / "encrypted_key")],
                   check=True, timeout=30)
    paths["encrypted"] = tmp_path / "encrypted_key"
    paths["missing"] = tmp_path / "missing_key"
    paths["directory"] = tmp_path
    return paths


@pytest.mark.reliability(40)
@pytest.mark.parametrize("kind,message", [("binary", "not an SSH private key"), ("text", "not an SSH private key"),
                                          ("empty", "is empty"), ("public", "not an SSH private key"),
                                          ("encrypted", "is encrypted"), ("missing", "does not exist"),
                                          ("directory", "is a directory")])
def test_bad_identity_is_a_usage_error_before_connecting(hil_bundle, key_files, kind, message):
    with silent_server() as (port, held):
        result = run(hil_run_args(hil_bundle, port, "--identity", str(key_files[kind])))
        assert not held, "nothing was connected"
    assert result.exit_code == 2, result.stderr
    [line] = [line for line in result.stderr.splitlines() if message in line]     # one line says it all
    assert str(key_files[kind]) in line and "Traceback" not in result.stderr


@pytest.mark.reliability(40)
@pytest.mark.parametrize("content,message", [(os.urandom(4000) + b"\xff", "not text"),
                                             (b"garbage here\n", "line 1: not a known_hosts entry"),
                                             (b"# ok\nhost ssh-ed25519 !!!notbase64!!!\n", "line 2"),
                                             (b"host ssh-ed25519 AAAA\n", "line 1"),
                                             (b"host\0name ssh-ed25519 AAAAC3NzaC1lZDI1NTE5\n", "line 1")])
def test_bad_known_hosts_is_a_usage_error(hil_bundle, tmp_path, sshd, content, message):
    known = tmp_path / "known_hosts"
    known.write_bytes(content)
    with silent_server() as (port, held):
        result = run(hil_run_args(hil_bundle, port, "--known-hosts", str(known), "--identity", str(sshd.client_key)))
        assert not held
    assert result.exit_code == 2, result.stderr
    assert message in result.stderr and str(known) in result.stderr and "Traceback" not in result.stderr


def test_known_hosts_with_markers_and_foreign_key_types_still_works(sshd, tmp_path):
    known = tmp_path / "known_hosts"
    key = " ".join(sshd.known_hosts.read_text().split()[1:3])          # a well-formed ssh-ed25519 key
    known.write_text(f"# comment\n\n@cert-authority *.example.com {key}\n@revoked other.example.com {key}\n"
                     "other.example.com sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29t\n"
                     + sshd.known_hosts.read_text())
    with SshTransport(uri(sshd), options(sshd, known_hosts=known)) as device:
        assert device.run(["true"], timeout=10)[0] == 0


def test_identity_loaded_before_connect_is_used(sshd):
    key = ssh_files.load_identity(sshd.client_key)
    assert key.get_name() == "ssh-ed25519"
    with SshTransport(uri(sshd), options(sshd)) as device:
        assert device.run(["echo", "ok"], timeout=10) == (0, b"ok\n", b"")
    with pytest.raises(UsageError, match="does not exist"):
        SshTransport(uri(sshd), replace(options(sshd), identity_file=sshd.client_key.with_name("nope")))


@pytest.mark.reliability(27, 41)
def test_no_banner_prints_no_paramiko_traceback(hil_bundle, sshd):
    """A real `edgex` process: paramiko's transport thread logs a traceback per attempt unless silenced."""
    with silent_server() as (port, held):
        done = subprocess.run([sys.executable, "-m", "exporter", "hil", "run", str(hil_bundle), "--device",
                               f"ssh://nobody@127.0.0.1:{port}/tmp", "--retries", "1", "--connect-timeout", "1",
                               "--identity", str(sshd.client_key), "--known-hosts", str(sshd.known_hosts)],
                              capture_output=True, text=True, timeout=90, env=os.environ | {"EDGEX_NO_PROGRESS": "1"})
        assert len(held) == 2
    assert done.returncode == 5, done.stderr
    assert "no SSH banner" in done.stderr
    assert "Traceback" not in done.stderr and "Exception (client)" not in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.mark.reliability(41)
def test_paramiko_logging_follows_debug(monkeypatch):
    logger = logging.getLogger("paramiko")
    monkeypatch.setitem(_settings, "debug", False)
    ssh_files.quiet_paramiko_logging()
    assert not logger.propagate and any(isinstance(h, logging.NullHandler) for h in logger.handlers)
    monkeypatch.setitem(_settings, "debug", True)
    ssh_files.quiet_paramiko_logging()
    assert logger.propagate and ssh_files._NULL_HANDLER not in logger.handlers
