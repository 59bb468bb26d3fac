"""The Transport contract and registry.

A transport reaches one device named by a URI (`local`, `ssh://user@host:port`,
`adb://SERIAL`, `serial:///dev/ttyACM0`) and runs a bundle there. Host-like
devices (local, SSH, adb) get the Python agent and the model pushed, run it and
return its JSON; microcontrollers (serial) speak a framed protocol to firmware
that already holds the model. Every call is bounded in time; every fault is a
DeviceError (exit 5). Transports are declared by the `edgex.transports` entry
points, keyed by URI scheme, and imported only when a URI names them: `local`
imports no SSH, adb or serial library.

Example:
    >>> with open_transport("local") as t:      # ssh://pi@host:2222, adb://SERIAL, serial:///dev/ttyACM0
    ...     t.describe()["transport"]
    'local'
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlsplit

from exporter.errors import DeviceError, UsageError
from exporter.registry import Registry

DELEGATES = ("cpu", "xnnpack", "gpu", "nnapi")
"""The runtime delegates a device run can ask for (the profile's `delegate`)."""


@dataclass(frozen=True)
class RunPlan:
    """What to run on the device."""

    warmup: int = 10
    runs: int = 50
    eval_samples: int = 0          # run this many of the bundle's eval samples (0: none)
    timeout: float = 300.0         # seconds for the whole run on the device
    threads: int | None = None     # runtime threads (None: the bundle profile's `threads`)
    delegate: str | None = None    # cpu | xnnpack | gpu | nnapi (None: the bundle profile's `delegate`)

    def __post_init__(self):
        """Refuse a plan no device can carry out (the CLI's ranges, for API callers too).

        Raises:
            UsageError: naming the parameter and its range.
        """
        for name, low, high in (("warmup", 0, 10_000), ("runs", 1, 100_000), ("eval_samples", 0, 100_000)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise UsageError(f"RunPlan {name}={value!r}: expected an integer from {low} to {high}")
        if not isinstance(self.timeout, (int, float)) or not 1 <= self.timeout <= 86_400:
            raise UsageError(f"RunPlan timeout={self.timeout!r}: expected 1 to 86400 seconds")
        if self.threads is not None and (not isinstance(self.threads, int) or not 1 <= self.threads <= 256):
            raise UsageError(f"RunPlan threads={self.threads!r}: expected an integer from 1 to 256")
        if self.delegate not in (None, *DELEGATES):
            raise UsageError(f"RunPlan delegate={self.delegate!r}: expected one of {', '.join(DELEGATES)}")


@dataclass(frozen=True)
class TransportOptions:
    """Connection settings shared by transports (each uses what applies to it)."""

    connect_timeout: float = 10.0
    command_timeout: float = 300.0
    retries: int = 2
    known_hosts: Path | None = None          # SSH: known_hosts file (default ~/.ssh/known_hosts)
    accept_unknown_host: bool = False        # SSH: trust a host key not in known_hosts (explicit flag)
    identity_file: Path | None = None        # SSH: private key
    python: str = "python3"                  # interpreter that runs the agent on host-like devices
    benchmark_binary: Path | None = None     # adb: LiteRT's benchmark_model for the phone (else the edgex config's)
    baudrate: int = 115200                   # serial
    extra: dict = field(default_factory=dict)


TRANSPORTS = Registry("device", key="scheme", group="edgex.transports",
                      base="exporter.hil.transports.base:Transport", error=UsageError)
"""Transports by URI scheme: the `edgex.transports` entry points (imported when named) and classes in code."""
register = TRANSPORTS.register
_URI_FORMS = {"local": "local", "ssh": "ssh://user@host[:port]", "adb": "adb://SERIAL", "serial": "serial:///dev/PORT"}


def transport_class(uri: str) -> type["Transport"]:
    """The class for a device URI's scheme ("local" has none), importing only its module.

    `local` imports no SSH, adb or serial library: each transport module imports its own.

    Args:
        uri: `local`, `ssh://user@host[:port]`, `adb://SERIAL`, `serial:///dev/PORT`, or a plugin's scheme.

    Returns:
        The Transport subclass.

    Raises:
        UsageError: unknown scheme (listing the known ones), or a broken entry point.
    """
    scheme = "local" if uri == "local" else urlsplit(uri).scheme
    forms = [_URI_FORMS.get(name, f"{name}://...") for name in TRANSPORTS.names()]
    return TRANSPORTS.get(scheme, shown=uri, hint=f"Use one of: {', '.join(forms)}")


def open_transport(uri: str, options: TransportOptions | None = None) -> "Transport":
    """Create and connect the transport for `uri`.

    Args:
        uri: the device (see `transport_class`).
        options: connection settings; None gives the defaults.

    Returns:
        The connected transport (a context manager that closes it).

    Raises:
        UsageError: unknown scheme or bad URI. DeviceError: the device cannot be reached.
    """
    return transport_class(uri)(uri, options or TransportOptions())


class Transport(ABC):
    """One connection to one device. Use as a context manager; `close()` always runs.

    After `run_bundle`, `notes` holds what the run record should say about how the device ran it,
    and `skipped` the reasons (by limit name) for checks it could not measure.
    """

    scheme: ClassVar[str]
    takes_benchmark_binary: ClassVar[bool] = False     # runs LiteRT's benchmark_model (options.benchmark_binary)

    def __init__(self, uri: str, options: TransportOptions):
        self.uri = uri
        self.options = options
        self.notes: list[str] = []
        self.skipped: dict[str, str] = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @abstractmethod
    def run_bundle(self, bundle: Path, plan: RunPlan) -> bytes:
        """Run the bundle's model on the device; return the agent's raw answer (one JSON object).

        Raises:
            DeviceError: any transport or device fault, within bounded time.
        """

    @abstractmethod
    def describe(self) -> dict:
        """Who the device is: {"transport", "id", ...} for the run record."""

    def close(self) -> None:
        """Release the connection and remove what was pushed to the device."""


class HostTransport(Transport):
    """A device with a shell and Python: push files, run a command, fetch, close."""

    @abstractmethod
    def push(self, local: Path, remote_name: str) -> str:
        """Upload to a temp path, verify its sha256 there, rename; return the remote path."""

    @abstractmethod
    def run(self, argv: list[str], timeout: float) -> tuple[int, bytes, bytes]:
        """Run a command; return (exit code, stdout, stderr), each output bounded in size."""

    def run_bundle(self, bundle: Path, plan: RunPlan) -> bytes:
        """Push the agent, the model (and eval samples) and run the agent; return its stdout."""
        from exporter.hil.agent_files import agent_invocation

        files, argv = agent_invocation(bundle, plan, self.options.python)
        remote = {name: self.push(path, name) for name, path in files.items()}
        argv = [remote.get(a, a) for a in argv]
        code, out, err = self.run(argv, plan.timeout)
        if code != 0 and not out.strip():
            tail = err.decode("utf-8", "replace").strip().splitlines()[-3:]
            raise DeviceError(f"agent on {self.uri} exited {code}: {' | '.join(tail) or 'no output'}")
        return out
