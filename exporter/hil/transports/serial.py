"""The `serial` device: a microcontroller whose firmware speaks edgex's framed protocol.

The firmware (built from a bundle's `mcu/` sources) already holds the model; edgex opens the
port exclusively, asks HELLO (the firmware answers its protocol version, the sha256 of the model
it was flashed with, its CPU clock and its tensor arena), refuses a board that runs another
model, sends RUN and turns the RESULT (cycles per inference) into the agent's JSON answer
(exporter/hil/result.py). Frames are CRC-checked, resent on NACK or silence up to
`options.retries` times, and every wait is bounded: the whole run by `plan.timeout`.
The protocol is described for firmware authors in docs/serial-protocol.md.

URIs: `serial:///dev/ttyACM0`, `serial:///dev/pts/5?baud=115200`, `serial://COM3`.
The `serial_reply_timeout` key of `options.extra` (seconds, default 2) bounds the wait for each reply
to start (raise it for boards that reset when the port opens).

Example:
    >>> parse_uri("serial:///dev/ttyACM0?baud=921600", 115200), parse_uri("serial://COM3", 115200)
    (('/dev/ttyACM0', 921600), ('COM3', 115200))
    >>> from exporter.hil.transports.base import RunPlan
    >>> with SerialTransport("serial:///dev/ttyACM0", TransportOptions()) as t:   # doctest: +SKIP
    ...     raw = t.run_bundle(Path("build/nano33"), RunPlan(warmup=5, runs=20))
"""
from __future__ import annotations

import errno
import json
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from exporter.errors import DeviceError, IntegrityError, UsageError
from exporter.hil import serial_protocol as sp
from exporter.hil.result import PROTOCOL_VERSION
from exporter.hil.transports.base import RunPlan, Transport, TransportOptions, register

RUNTIME = "TFLM (firmware)"
POLL = 0.02          # s: granularity of reads (pyserial's read timeout)
WRITE_TIMEOUT = 2.0  # s for one frame to leave the host


@dataclass(frozen=True)
class FirmwareInfo:
    """What the firmware said in INFO."""

    model_sha256: str
    clock_hz: int
    arena_size: int
    arena_used: int
    runtime: str


class _FirmwareRefused(Exception):
    """The firmware answered ERROR."""


def parse_uri(uri: str, default_baud: int) -> tuple[str, int]:
    """The port path and baud rate of a `serial:` URI.

    Raises:
        UsageError: no port, or a baud rate that is not a positive integer.
    """
    parts = urlsplit(uri)
    port = parts.path if parts.path not in ("", "/") else parts.netloc
    if not port:
        raise UsageError(f"serial device {uri!r} names no port; use serial:///dev/ttyACM0 or serial://COM3")
    baud = parse_qs(parts.query).get("baud", [str(default_baud)])[-1]
    if not baud.isdigit() or int(baud) <= 0:
        raise UsageError(f"serial device {uri!r}: baud must be a positive integer, got {baud!r}")
    return port, int(baud)


@register
class SerialTransport(Transport):
    """Talks to firmware over a serial port (pyserial), opened exclusively.

    Args:
        uri: `serial:///dev/PORT[?baud=N]`.
        options: `baudrate` (overridden by `?baud=`), `retries`, `connect_timeout`,
            `extra` key `serial_reply_timeout`.

    Raises:
        DeviceError: the port is missing, busy or not ours to open.
    """

    scheme = "serial"

    def __init__(self, uri: str, options: TransportOptions):
        super().__init__(uri, options)
        self.port, self.baudrate = parse_uri(uri, options.baudrate)
        self.reply_timeout = float(options.extra.get("serial_reply_timeout", sp.REPLY_TIMEOUT))
        self.info: FirmwareInfo | None = None
        self._seq = 0
        self.line = {"resent": 0, "nacked": 0, "garbage_bytes": 0}   # what the line cost, for the record
        self._ser = self._open()
        self._reader = sp.FrameReader(self._read, self.baudrate)

    def _open(self):
        import serial

        ser = serial.Serial()
        ser.port, ser.baudrate, ser.timeout, ser.write_timeout = self.port, self.baudrate, POLL, WRITE_TIMEOUT
        ser.exclusive = True
        try:
            ser.open()
            ser.reset_input_buffer()
        except (serial.SerialException, OSError) as exc:
            raise DeviceError(self._open_error(exc)) from None
        return ser

    def _open_error(self, exc: Exception) -> str:
        code = getattr(exc, "errno", None)
        text = str(exc)
        if code == errno.ENOENT or "No such file" in text:
            from serial.tools import list_ports

            ports = sorted(p.device for p in list_ports.comports())
            seen = f"ports here: {', '.join(ports)}" if ports else "no serial ports are connected here"
            return f"serial port {self.port} does not exist ({seen}); is the board plugged in?"
        if "exclusively lock" in text or code in (errno.EBUSY, errno.EAGAIN, errno.EWOULDBLOCK):
            return (f"serial port {self.port} is busy: another program has it open (a serial monitor, "
                    "another edgex run?); close it and try again")
        if code in (errno.EACCES, errno.EPERM):
            return f"no permission to open serial port {self.port}: add your user to the 'dialout' group"
        return f"cannot open serial port {self.port}: {text}"

    # -- the line -------------------------------------------------------------------------

    def _disconnected(self, exc: Exception) -> DeviceError:
        return DeviceError(f"serial port {self.port}: device disconnected during the run (unplugged, reset or "
                           f"crashed?): {exc}")

    def _read(self, n: int, timeout: float) -> bytes:
        import serial

        end = time.monotonic() + timeout
        try:
            while True:
                data = self._ser.read(max(1, min(n, self._ser.in_waiting)))
                if data or time.monotonic() >= end:
                    return data
        except (serial.SerialException, OSError) as exc:
            raise self._disconnected(exc) from None

    def _write(self, frame: bytes) -> None:
        import serial

        try:
            self._ser.write(frame)
            self._ser.flush()
        except serial.SerialTimeoutException:
            raise DeviceError(f"serial port {self.port}: a frame could not be sent within {WRITE_TIMEOUT:g} s "
                              "(flow control stuck? the board not reading?)") from None
        except (serial.SerialException, OSError) as exc:
            raise self._disconnected(exc) from None

    def _request(self, ftype: int, payload: bytes, expect: int, deadline: float) -> sp.Frame:
        """Send one request and return its answer, retrying on NACK, CRC failure or silence."""
        self._seq = (self._seq + 1) & 0xFF
        seq, name, want = self._seq, sp.TYPE_NAMES[ftype], sp.TYPE_NAMES[expect]
        request = sp.encode(ftype, seq, payload)
        attempts, accepted = 1, False
        self._reader.clear()
        try:
            self._ser.reset_input_buffer()    # stale answers to earlier requests
        except OSError as exc:
            raise self._disconnected(exc) from None
        self._write(request)
        wait_until = min(deadline, time.monotonic() + self.reply_timeout)
        while True:
            event = self._reader.next_event(wait_until)
            now = time.monotonic()
            if event is None and now >= deadline:
                raise DeviceError(f"serial port {self.port}: no {want} for {name} before the run's deadline"
                                  + (" (the firmware accepted it and went silent)" if accepted else ""))
            if isinstance(event, sp.Frame) and event.version != sp.VERSION:
                raise DeviceError(f"serial port {self.port}: the firmware speaks serial protocol version "
                                  f"{event.version}; edgex speaks {sp.VERSION}: flash the bundle's mcu/ sources")
            if isinstance(event, sp.Frame) and event.type != sp.NACK and event.seq != seq:
                continue                                   # a stale or repeated answer
            if isinstance(event, sp.Frame) and event.type == sp.ACK:
                accepted, wait_until = True, deadline
                continue
            if isinstance(event, sp.Frame) and event.type == sp.ERROR:
                raise _FirmwareRefused(event.payload.decode("utf-8", "replace")[:500])
            if isinstance(event, sp.Frame) and event.type == expect:
                self.line["garbage_bytes"] = self._reader.garbage
                return event
            if isinstance(event, sp.Frame) and event.type != sp.NACK:
                raise DeviceError(f"serial port {self.port}: the firmware answered {name} with {event.name}, "
                                  f"not {want}")
            if event is None and accepted:
                continue
            attempts += 1
            why = (f"no answer within {self.reply_timeout:g} s" if event is None
                   else "the firmware could not read it (NACK)" if isinstance(event, sp.Frame) else event.reason)
            if attempts > 1 + self.options.retries:
                raise DeviceError(f"serial port {self.port}: {name} failed after {attempts - 1} attempts, the last "
                                  f"with: {why}; check the cable, the baud rate and the firmware")
            self.line["nacked" if isinstance(event, sp.Corrupt) else "resent"] += 1
            self._write(request if not isinstance(event, sp.Corrupt) else sp.encode(sp.NACK, seq))
            wait_until = deadline if accepted else min(deadline, time.monotonic() + self.reply_timeout)

    # -- the protocol ---------------------------------------------------------------------

    def hello(self, deadline: float) -> FirmwareInfo:
        """Ask HELLO; return (and keep) what the firmware says about itself."""
        try:
            frame = self._request(sp.HELLO, b"", sp.INFO, deadline)
        except _FirmwareRefused as exc:
            raise DeviceError(f"serial port {self.port}: the firmware refused HELLO: {exc}") from None
        if len(frame.payload) < sp.INFO_PAYLOAD.size:
            raise DeviceError(f"serial port {self.port}: INFO of {len(frame.payload)} bytes is too short")
        sha, clock, arena_size, arena_used = sp.INFO_PAYLOAD.unpack_from(frame.payload)
        text = frame.payload[sp.INFO_PAYLOAD.size:][:sp.MAX_RUNTIME_TEXT].decode("utf-8", "replace")
        if clock <= 0:
            raise DeviceError(f"serial port {self.port}: the firmware reports a CPU clock of 0 Hz")
        self.info = FirmwareInfo(sha.hex(), clock, arena_size, arena_used, text.strip() or "unknown")
        return self.info

    def run_bundle(self, bundle: Path, plan: RunPlan) -> bytes:
        """HELLO, check the model, RUN; return the RESULT as the agent's JSON answer (bytes).

        Raises:
            DeviceError: another model on the board, another protocol version, a fault on
                the line that retries did not cure, a disconnect, or the deadline.
            IntegrityError: the bundle has no model.tflite.
        """
        from exporter.hil.transports.local import sha256_file

        deadline = time.monotonic() + plan.timeout
        model = Path(bundle) / "model.tflite"
        if not model.is_file():
            raise IntegrityError(f"bundle {bundle} has no model.tflite; re-export it with this edgex")
        if not (0 <= plan.warmup <= 0xFFFF and 1 <= plan.runs <= 0xFFFF):
            raise UsageError(f"a serial run takes 0-65535 warmup and 1-65535 runs, got {plan.warmup}/{plan.runs}")
        info = self.hello(deadline)
        if info.model_sha256 != sha256_file(model):
            raise DeviceError(f"serial port {self.port}: the board runs another model (sha256 "
                              f"{info.model_sha256[:12]}…, the bundle's is {sha256_file(model)[:12]}…): "
                              "flash the bundle's mcu/ sources")
        try:
            frame = self._request(sp.RUN, sp.RUN_PAYLOAD.pack(plan.warmup, plan.runs), sp.RESULT, deadline)
        except _FirmwareRefused as exc:
            return json.dumps(self._answer(ok=False, error=f"the firmware refused RUN: {exc}")).encode()
        if len(frame.payload) != sp.RESULT_PAYLOAD.size:
            raise DeviceError(f"serial port {self.port}: RESULT of {len(frame.payload)} bytes; expected "
                              f"{sp.RESULT_PAYLOAD.size}")
        p50, p90, mean, runs, arena_used, digest = sp.RESULT_PAYLOAD.unpack(frame.payload)
        ms = 1000.0 / info.clock_hz
        return json.dumps(self._answer(
            ok=True, latency_ms={"p50": p50 * ms, "p90": p90 * ms, "mean": mean * ms, "runs": runs},
            cycles=p50, arena_bytes=arena_used, output_digest=digest.hex(),
            device={"port": self.port, "clock_hz": info.clock_hz, "arena_size": info.arena_size,
                    "cycles_p90": p90, "cycles_mean": mean, "line": dict(self.line)})).encode()

    def _answer(self, **fields) -> dict:
        info = self.info
        return {"protocol": PROTOCOL_VERSION, "runtime": RUNTIME, "runtime_version": info.runtime[:100],
                "model_sha256": info.model_sha256, **fields}

    def describe(self) -> dict:
        out = {"transport": "serial", "id": self.port, "baudrate": self.baudrate}
        if self.info is not None:
            out |= {"clock_hz": self.info.clock_hz, "firmware": self.info.runtime,
                    "arena_size": self.info.arena_size}
        return out | {"line": dict(self.line)}

    def close(self) -> None:
        ser, self._ser = getattr(self, "_ser", None), None
        if ser is not None:
            try:
                ser.close()
            except OSError:
                pass
