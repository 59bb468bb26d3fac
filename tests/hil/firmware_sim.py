"""A simulated microcontroller: the firmware side of the serial protocol, on a pty, with real TFLM.

Usage:
    python tests/hil/firmware_sim.py --port /dev/pts/N --model model.tflite \\
        [--clock-hz 64000000] [--arena-size 1048576] [--fault NAME]
    python tests/hil/firmware_sim.py --fd N --model model.tflite ...   # an inherited pty master

(from the repository root, with it on PYTHONPATH: it imports `exporter` and `targets`).

It behaves as firmware built from a bundle's `mcu/` sources should (docs/serial-protocol.md):
HELLO is answered with INFO (the sha256 of its model, its clock, its arena size and the arena
TFLM's recording allocator measured); RUN with ACK, then `warmup` untimed and `runs` timed
`invoke()`s of the real TFLM interpreter (`tflite_micro`) on zero inputs, then RESULT, the
wall-clock time of each invoke converted to cycles at `--clock-hz`. It answers NACK by sending
its last frame again, and a repeated request (same seq) from its cache without running again.

`--port` opens a tty (e.g. one end of `socat -d -d pty,raw,echo=0 pty,raw,echo=0`); `--fd`
uses a pty master inherited from the parent (as tests do). Faults, for tests of the host:
corrupt-once, corrupt-always, drop-byte, garbage, hang, die, wrong-version, wrong-model.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import random
import sys
import time
import tty

from exporter.hil import serial_protocol as sp

FAULTS = ("corrupt-once", "corrupt-always", "drop-byte", "garbage", "hang", "die", "wrong-version",
          "wrong-model")
RUNTIME_TEXT = "TFLM (tflite_micro Python interpreter), edgex firmware_sim"


class Model:
    """The model on the real TFLM interpreter, with its measured arena."""

    def __init__(self, data: bytes, arena_size: int):
        import numpy as np
        from tflite_micro.python.tflite_micro import runtime

        from exporter.analysis.graph import Graph
        from targets.microcontroller.tflm_probe import capture_native, parse_allocations

        graph = Graph.from_bytes(data)
        self.n_outputs = len(graph.outputs)
        self.sha256 = hashlib.sha256(data).digest()
        self.arena_size = arena_size
        self.interpreter = runtime.Interpreter.from_bytes(
            data, arena_size=arena_size, intrepreter_config=runtime.InterpreterConfig.kAllocationRecording)
        for i in range(len(graph.inputs)):
            details = self.interpreter.get_input_details(i)
            self.interpreter.set_input(np.zeros(tuple(details["shape"]), dtype=details["dtype"]), i)
        self.interpreter.invoke()
        self.arena_used = parse_allocations(capture_native(self.interpreter.print_allocations))["arena_bytes"]

    def output_digest(self) -> bytes:
        h = hashlib.sha256()
        for i in range(self.n_outputs):
            h.update(self.interpreter.get_output(i).tobytes())
        return h.digest()

    def run(self, warmup: int, runs: int, clock_hz: int, on_invoke=None) -> bytes:
        """Invoke warmup + runs times; return the RESULT payload (cycles at `clock_hz`)."""
        import numpy as np

        for _ in range(warmup):
            self.interpreter.invoke()
        cycles, digest = [], b""
        for i in range(runs):
            if on_invoke:
                on_invoke(i)
            t0 = time.perf_counter_ns()
            self.interpreter.invoke()
            cycles.append((time.perf_counter_ns() - t0) * clock_hz // 1_000_000_000)
            if i == 0:
                digest = self.output_digest()
        c = np.asarray(cycles, dtype=np.float64)
        return sp.RESULT_PAYLOAD.pack(int(np.percentile(c, 50)), int(np.percentile(c, 90)), int(c.mean()),
                                      runs, self.arena_used, digest)


class Firmware:
    """The protocol loop of the simulated board, with an optional fault."""

    def __init__(self, fd: int, model: Model, clock_hz: int, fault: str | None):
        self.fd, self.model, self.clock_hz, self.fault = fd, model, clock_hz, fault
        self.reader = sp.FrameReader(sp.fd_reader(fd))
        self.last_frame: bytes | None = None     # the good copy of the last frame sent
        self.last_request: tuple[int, int] | None = None
        self.corrupted = self.dropped = False

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]

    def send(self, ftype: int, seq: int, payload: bytes = b"") -> None:
        version = 9 if self.fault == "wrong-version" else sp.VERSION
        frame = sp.encode(ftype, seq, payload, version=version)
        if ftype != sp.NACK:
            self.last_frame = frame
        self._transmit(frame, ftype)

    def _transmit(self, frame: bytes, ftype: int) -> None:
        wire = bytearray(frame)
        if ftype == sp.RESULT and (self.fault == "corrupt-always" or (self.fault == "corrupt-once"
                                                                        and not self.corrupted)):
            wire[-2] ^= 0xFF
            self.corrupted = True
        if ftype == sp.RESULT and self.fault == "drop-byte" and not self.dropped:
            del wire[sp.HEADER_SIZE + 3]
            self.dropped = True
        if self.fault == "garbage":
            wire[:0] = random.randbytes(random.randint(1, 64))
        self._write(bytes(wire))

    def handle(self, frame: sp.Frame) -> None:
        if frame.type == sp.NACK:
            if self.last_frame is not None:
                self._transmit(self.last_frame, self.last_frame[3])
            return
        if frame.version != sp.VERSION:
            self.send(sp.ERROR, frame.seq, f"unsupported protocol version {frame.version}".encode())
            return
        if (frame.seq, frame.type) == self.last_request and self.last_frame is not None:
            self._transmit(self.last_frame, self.last_frame[3])    # a repeat: answer from the cache
            return
        if frame.type == sp.HELLO:
            sha = hashlib.sha256(b"another model").digest() if self.fault == "wrong-model" else self.model.sha256
            payload = sp.INFO_PAYLOAD.pack(sha, self.clock_hz, self.model.arena_size, self.model.arena_used)
            self.send(sp.INFO, frame.seq, payload + RUNTIME_TEXT.encode()[:sp.MAX_RUNTIME_TEXT])
        elif frame.type == sp.RUN:
            if self.fault == "hang":
                return
            if len(frame.payload) != sp.RUN_PAYLOAD.size:
                self.send(sp.ERROR, frame.seq, b"RUN payload must be 4 bytes: warmup u16, runs u16")
                return
            warmup, runs = sp.RUN_PAYLOAD.unpack(frame.payload)
            if runs < 1:
                self.send(sp.ERROR, frame.seq, b"RUN needs at least one timed run")
                return
            self.send(sp.ACK, frame.seq)
            self.last_request = (frame.seq, frame.type)
            self.send(sp.RESULT, frame.seq, self.model.run(warmup, runs, self.clock_hz, self._maybe_die))
            return
        else:
            self.send(sp.ERROR, frame.seq, f"unexpected {frame.name} frame".encode())
        self.last_request = (frame.seq, frame.type)

    def _maybe_die(self, i: int) -> None:
        if self.fault == "die" and i == 1:
            os._exit(3)                        # the board is gone: the pty master closes

    def serve(self) -> None:
        while True:
            try:
                event = self.reader.next_event(time.monotonic() + 1.0)
                if isinstance(event, sp.Corrupt):
                    self.send(sp.NACK, 0)
                elif event is not None:
                    self.handle(event)
            except OSError:                    # no host has the port open (EIO): wait for one
                time.sleep(0.05)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tests/hil/firmware_sim.py", description=__doc__.split("\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--port", help="tty to serve (e.g. /dev/pts/5)")
    where.add_argument("--fd", type=int, help="inherited pty master file descriptor")
    parser.add_argument("--model", required=True, help="the .tflite model 'flashed' on the board")
    parser.add_argument("--clock-hz", type=int, default=64_000_000, help="CPU clock the cycles are counted at")
    parser.add_argument("--arena-size", type=int, default=1 << 20, help="tensor arena handed to TFLM, bytes")
    parser.add_argument("--fault", choices=FAULTS, help="misbehave this way (for tests)")
    args = parser.parse_args(argv)
    with open(args.model, "rb") as f:
        model = Model(f.read(), args.arena_size)
    fd = args.fd if args.fd is not None else os.open(args.port, os.O_RDWR | os.O_NOCTTY)
    tty.setraw(fd)
    print(f"firmware_sim ready: arena {model.arena_used} B, clock {args.clock_hz} Hz", file=sys.stderr, flush=True)
    try:
        Firmware(fd, model, args.clock_hz, args.fault).serve()
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
