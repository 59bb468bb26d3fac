"""The serial protocol and transport, against the simulated firmware on a real pty with real TFLM.

Each board is `python tests/hil/firmware_sim.py --fd MASTER` holding the master side of a
pty; the host opens the slave path as a serial port. Faults are the simulator's `--fault`s.
"""
from __future__ import annotations

import hashlib
import json
import os
import pty
import random
import struct
import threading
import time
import tty
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(120)

from exporter.errors import DeviceError
from exporter.hil import serial_protocol as sp
from exporter.hil.result import parse_agent_output
from exporter.hil.transports.base import RunPlan, TransportOptions, open_transport
from exporter.hil.transports.serial import SerialTransport, parse_uri

FAST = TransportOptions(retries=2, extra={"serial_reply_timeout": 0.5})
PLAN = RunPlan(warmup=2, runs=12, timeout=10)


# -- fixtures --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mcu_bundle(demo, tmp_path_factory):
    """The demo exported for microcontrollers (int8, TFLM)."""
    import exporter

    out = tmp_path_factory.mktemp("bundles") / "demo-mcu"
    exporter.export(demo=True, target="microcontroller", out=out, progress=False)
    return out


@pytest.fixture
def board(mcu_bundle, serial_board):
    """Start simulated boards running the demo: `board(fault=None, clock_hz=...)` -> (port path, process)."""
    return lambda fault=None, **kw: serial_board(mcu_bundle / "model.tflite", fault, **kw)


def _run(port: str, bundle: Path, plan: RunPlan = PLAN, options: TransportOptions = TransportOptions()):
    with open_transport(f"serial://{port}", options) as t:       # through the registry
        assert isinstance(t, SerialTransport)
        raw = t.run_bundle(bundle, plan)
        return parse_agent_output(raw), t.describe()


# -- framing ---------------------------------------------------------------------------------

def _reader(data: bytes) -> sp.FrameReader:
    """A reader over `data` arriving at once, then silence (each silent read waits, as a port does)."""
    chunks = iter([data])
    return sp.FrameReader(lambda n, timeout: next(chunks, None) or time.sleep(min(timeout, 0.02)) or b"")


def test_round_trip_every_type_and_sizes():
    for ftype in sp.TYPE_NAMES:
        for payload in (b"", b"\xed\x6e" * 3, bytes(range(256)) * 16):
            frame = sp.decode(sp.encode(ftype, 255, payload))
            assert (frame.version, frame.type, frame.seq, frame.payload) == (sp.VERSION, ftype, 255, payload)
    assert len(sp.encode(sp.RESULT, 1, bytes(sp.MAX_PAYLOAD))) == sp.HEADER_SIZE + sp.MAX_PAYLOAD + sp.CRC_SIZE
    with pytest.raises(ValueError, match="over the 4096-byte maximum"):
        sp.encode(sp.RESULT, 1, bytes(sp.MAX_PAYLOAD + 1))


@pytest.mark.reliability(30)
def test_crc_detects_every_single_byte_flip():
    good = sp.encode(sp.RESULT, 7, bytes(range(64)))
    for i in range(2, len(good)):             # past the magic: any damaged byte is refused
        bad = bytearray(good)
        bad[i] ^= 0x5A
        reader = _reader(bytes(bad))
        event = reader.next_event(time.monotonic() + 0.3)
        assert not isinstance(event, sp.Frame), f"flip at byte {i} was accepted"


@pytest.mark.reliability(30)
def test_resync_after_garbage_and_after_a_damaged_frame():
    random.seed(3)
    garbage = random.randbytes(300) + b"\xed" + b"\xed\x6e\x01"    # false starts included
    bad = bytearray(sp.encode(sp.INFO, 1, b"x" * 40))
    bad[-1] ^= 1
    stream = garbage + sp.encode(sp.HELLO, 1) + bytes(bad) + sp.encode(sp.RUN, 2, b"abcd")
    reader = _reader(stream)
    deadline = time.monotonic() + 3
    events = []
    while not events or events[-1] is not None and getattr(events[-1], "type", None) != sp.RUN:
        events.append(reader.next_event(deadline))
    frames = [e for e in events if isinstance(e, sp.Frame)]
    assert [(f.type, f.seq) for f in frames] == [(sp.HELLO, 1), (sp.RUN, 2)]
    assert any(isinstance(e, sp.Corrupt) and "CRC" in e.reason for e in events)
    assert reader.garbage >= 300


def test_oversize_length_refused_without_waiting():
    head = struct.pack("<2sBBBH", sp.MAGIC, 1, sp.RESULT, 1, 60000)
    reader = _reader(head + sp.encode(sp.HELLO, 4))
    t0 = time.monotonic()
    event = reader.next_event(t0 + 5)
    assert isinstance(event, sp.Corrupt) and "over the 4096-byte maximum" in event.reason
    assert time.monotonic() - t0 < 0.5
    assert reader.next_event(t0 + 5) == sp.Frame(1, sp.HELLO, 4, b"")


def test_cut_frame_refused_after_frame_timeout_and_silence_ends_at_deadline():
    frame = sp.encode(sp.RESULT, 1, bytes(64))
    reader = _reader(frame[:-3])
    t0 = time.monotonic()
    event = reader.next_event(t0 + 5)
    assert isinstance(event, sp.Corrupt) and "stopped arriving" in event.reason
    assert time.monotonic() - t0 < sp.frame_timeout(64, 115200) + 0.3
    t0 = time.monotonic()
    assert reader.next_event(t0 + 0.3) is None
    assert 0.25 < time.monotonic() - t0 < 1.0


def test_foreign_version_is_decoded_for_reporting():
    assert sp.decode(sp.encode(sp.INFO, 3, b"", version=9)).version == 9


def test_parse_uri():
    assert parse_uri("serial:///dev/ttyACM0", 115200) == ("/dev/ttyACM0", 115200)
    assert parse_uri("serial:///dev/pts/5?baud=921600", 115200) == ("/dev/pts/5", 921600)
    assert parse_uri("serial://COM3", 9600) == ("COM3", 9600)


# -- the transport against the simulated firmware --------------------------------------------

def test_run_measures_cycles_and_arena(board, mcu_bundle):
    port, _ = board(clock_hz=16_000_000)
    t0 = time.monotonic()
    result, who = _run(port, mcu_bundle)
    assert time.monotonic() - t0 < 5
    manifest = json.loads((mcu_bundle / "manifest.json").read_text())
    model_sha = hashlib.sha256((mcu_bundle / "model.tflite").read_bytes()).hexdigest()
    assert result.ok and result.runtime == "TFLM (firmware)" and result.model_sha256 == model_sha
    assert result.latency_ms.runs == PLAN.runs and result.cycles > 0
    assert result.latency_ms.p50 == pytest.approx(result.cycles / 16e6 * 1000)
    assert result.latency_ms.p50 <= result.latency_ms.p90
    assert result.arena_bytes == manifest["measurements"]["arena"]["value"] > 0   # TFLM's figure, both ways
    assert len(result.output_digest) == 64
    assert who["transport"] == "serial" and who["id"] == port and who["clock_hz"] == 16_000_000
    assert who["line"] == {"resent": 0, "nacked": 0, "garbage_bytes": 0}


@pytest.mark.reliability(30)
@pytest.mark.parametrize("fault, line_key", [("corrupt-once", "nacked"), ("drop-byte", "nacked"),
                                             ("garbage", "garbage_bytes")])
def test_line_faults_are_recovered(board, mcu_bundle, fault, line_key):
    port, _ = board(fault)
    t0 = time.monotonic()
    result, who = _run(port, mcu_bundle)
    assert time.monotonic() - t0 < 5
    assert result.ok and result.cycles > 0 and result.arena_bytes > 0
    assert who["line"][line_key] >= 1


@pytest.mark.reliability(30, 31)
@pytest.mark.parametrize("fault, message", [
    ("corrupt-always", r"RUN failed after 3 attempts.*CRC-32"),
    ("hang", r"RUN failed after 3 attempts.*no answer within 0.5 s"),
    ("die", r"device disconnected"),
    ("wrong-version", r"serial protocol version 9; edgex speaks 1"),
    ("wrong-model", r"runs another model .*flash the bundle's mcu/ sources"),
])
def test_device_faults_fail_in_bounded_time(board, mcu_bundle, fault, message):
    port, proc = board(fault)
    t0 = time.monotonic()
    with pytest.raises(DeviceError, match=message) as info:
        _run(port, mcu_bundle, options=FAST)
    assert time.monotonic() - t0 < 5
    assert info.value.exit_code == 5 and port in str(info.value)
    if fault == "die":
        assert proc.wait(timeout=5) == 3


@pytest.mark.reliability(30)
def test_whole_run_bounded_by_plan_timeout(board, mcu_bundle):
    port, _ = board("hang")
    options = TransportOptions(retries=10, extra={"serial_reply_timeout": 0.4})
    t0 = time.monotonic()
    with pytest.raises(DeviceError, match="before the run's deadline"):
        _run(port, mcu_bundle, RunPlan(warmup=0, runs=1, timeout=1.0), options)
    assert time.monotonic() - t0 < 2


@pytest.mark.reliability(30)
def test_port_busy(board):
    import serial

    port, _ = board()
    holder = serial.Serial(port, exclusive=True)
    try:
        with pytest.raises(DeviceError, match=f"serial port {port} is busy"):
            SerialTransport(f"serial://{port}", FAST)
    finally:
        holder.close()


def test_missing_port():
    with pytest.raises(DeviceError, match="serial port /dev/ttyEDGEX9 does not exist"):
        SerialTransport("serial:///dev/ttyEDGEX9", FAST)


def test_firmware_error_is_a_failed_run_and_stale_answers_are_ignored(mcu_bundle):
    """A minimal firmware in a thread: answers a stale frame first, then INFO; RUN gets ERROR."""
    master, slave = pty.openpty()
    tty.setraw(slave)
    sha = hashlib.sha256((mcu_bundle / "model.tflite").read_bytes()).digest()
    stop = threading.Event()

    def firmware():
        reader = sp.FrameReader(sp.fd_reader(master))
        while not stop.is_set():
            try:
                frame = reader.next_event(time.monotonic() + 0.1)
            except OSError:
                return
            if isinstance(frame, sp.Frame) and frame.type == sp.HELLO:
                os.write(master, sp.encode(sp.INFO, frame.seq - 1, bytes(44)))          # stale: ignored
                os.write(master, sp.encode(sp.INFO, frame.seq, sp.INFO_PAYLOAD.pack(sha, 48_000_000, 9000, 5000)))
            elif isinstance(frame, sp.Frame) and frame.type == sp.RUN:
                os.write(master, sp.encode(sp.ERROR, frame.seq, b"AllocateTensors failed: arena too small"))

    thread = threading.Thread(target=firmware, daemon=True)
    thread.start()
    try:
        result, who = _run(os.ttyname(slave), mcu_bundle)
        assert not result.ok and "arena too small" in result.error and result.model_sha256 == sha.hex()
        assert who["clock_hz"] == 48_000_000
    finally:
        stop.set()
        thread.join(timeout=5)
        os.close(master)
        os.close(slave)
