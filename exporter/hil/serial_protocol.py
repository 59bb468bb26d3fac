"""The framed serial protocol between edgex (host) and microcontroller firmware.

A frame is `MAGIC(2) | version(1) | type(1) | seq(1) | length(2, LE) | payload | CRC-32(4, LE)`;
the CRC (zlib/IEEE CRC-32) covers version..payload. The host asks (HELLO, RUN); the firmware
answers with the request's seq (INFO; ACK then RESULT; ERROR). A frame that fails its CRC or
stops arriving mid-way is answered with NACK, and the peer sends its last frame again. The
full description, for firmware authors writing the C side, is docs/serial-protocol.md.

`FrameReader` is the receiver of both sides: it resynchronises on MAGIC after garbage, refuses
oversize lengths, checks the CRC before believing anything (the version included) and bounds
every read by a deadline.

Example:
    >>> frame = encode(HELLO, 1)
    >>> decode(frame)
    Frame(version=1, type=1, seq=1, payload=b'')
"""
from __future__ import annotations

import os
import struct
import time
import zlib
from dataclasses import dataclass
from typing import Callable

MAGIC = b"\xed\x6e"
VERSION = 1
MAX_PAYLOAD = 4096
HEADER = struct.Struct("<2sBBBH")        # magic, version, type, seq, length
HEADER_SIZE = HEADER.size                # 7
CRC_SIZE = 4

HELLO, RUN = 0x01, 0x02                  # host -> firmware
INFO, RESULT, ACK = 0x81, 0x82, 0x83     # firmware -> host
ERROR, NACK = 0x7E, 0x7F                 # both ways (NACK) / firmware -> host (ERROR)
TYPE_NAMES = {HELLO: "HELLO", RUN: "RUN", INFO: "INFO", RESULT: "RESULT", ACK: "ACK",
              ERROR: "ERROR", NACK: "NACK"}

RUN_PAYLOAD = struct.Struct("<HH")       # warmup, runs
INFO_PAYLOAD = struct.Struct("<32sIII")  # model sha256, cpu clock Hz, arena size, arena used; + utf-8 runtime
RESULT_PAYLOAD = struct.Struct("<QQQII32s")  # cycles p50, p90, mean, runs, arena used, output sha256
MAX_RUNTIME_TEXT = 64

REPLY_TIMEOUT = 2.0                      # s for a reply (or ACK) to start arriving
FRAME_SLACK = 0.2                        # s added to twice a frame's time on the wire


def frame_timeout(length: int, baudrate: int) -> float:
    """Seconds a frame of `length` payload bytes may take from its first byte to its last."""
    return FRAME_SLACK + 20.0 * (HEADER_SIZE + length + CRC_SIZE) / max(baudrate, 1)


@dataclass(frozen=True)
class Frame:
    """One frame whose CRC checked out (its version may still be foreign)."""

    version: int
    type: int
    seq: int
    payload: bytes

    @property
    def name(self) -> str:
        return TYPE_NAMES.get(self.type, f"0x{self.type:02x}")


@dataclass(frozen=True)
class Corrupt:
    """A candidate frame that was refused: bad CRC, oversize length, or cut short."""

    reason: str


def encode(ftype: int, seq: int, payload: bytes = b"", *, version: int = VERSION) -> bytes:
    """Build one frame.

    Raises:
        ValueError: payload over MAX_PAYLOAD bytes, or a field out of its byte range.
    """
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes is over the {MAX_PAYLOAD}-byte maximum")
    head = HEADER.pack(MAGIC, version, ftype, seq & 0xFF, len(payload))
    return head + payload + struct.pack("<I", zlib.crc32(head[2:] + payload))


def decode(data: bytes) -> Frame:
    """Decode exactly one whole frame (for tests and tools).

    Raises:
        ValueError: not exactly one valid frame.
    """
    reader = FrameReader(lambda n, timeout: b"")
    reader.feed(data)
    event = reader.poll()
    if not isinstance(event, Frame) or reader.buffered or reader.garbage:
        raise ValueError(getattr(event, "reason", "not exactly one frame"))
    return event


class FrameReader:
    """Turns a byte stream into frames and `Corrupt` events, never blocking past a deadline.

    Args:
        read: `read(max_bytes, timeout_s) -> bytes`; b"" when nothing came in time. It raises
            (OSError, SerialException) when the line is gone.
        baudrate: Sets how long a started frame may take to complete.
    """

    def __init__(self, read: Callable[[int, float], bytes], baudrate: int = 115200):
        self._read = read
        self._baud = baudrate
        self._buf = bytearray()
        self._started: float | None = None    # when the frame at the buffer's head began
        self.garbage = 0                      # bytes skipped while looking for MAGIC

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> None:
        """Add received bytes (for receivers that read the line themselves)."""
        self._buf += data

    def poll(self) -> Frame | Corrupt | None:
        """The next event from the bytes already received, without reading or waiting."""
        return self._parse() if self._buf else None

    def clear(self) -> None:
        self._buf.clear()
        self._started = None

    def _parse(self) -> Frame | Corrupt | None:
        start = self._buf.find(MAGIC)
        if start < 0:                          # keep a trailing first MAGIC byte
            keep = 1 if self._buf[-1:] == MAGIC[:1] else 0
            self.garbage += len(self._buf) - keep
            del self._buf[:len(self._buf) - keep]
            return None
        if start:
            self.garbage += start
            del self._buf[:start]
            self._started = None
        if len(self._buf) < HEADER_SIZE:
            return None
        _, version, ftype, seq, length = HEADER.unpack_from(self._buf)
        if length > MAX_PAYLOAD:
            del self._buf[:1]
            self._started = None
            return Corrupt(f"frame length {length} is over the {MAX_PAYLOAD}-byte maximum")
        end = HEADER_SIZE + length + CRC_SIZE
        if len(self._buf) < end:
            return None
        body = bytes(self._buf[2:HEADER_SIZE + length])
        (crc,) = struct.unpack_from("<I", self._buf, HEADER_SIZE + length)
        del self._buf[:end]
        self._started = None
        if zlib.crc32(body) != crc:
            return Corrupt(f"{TYPE_NAMES.get(ftype, 'a')} frame failed its CRC-32 check")
        return Frame(version, ftype, seq, body[HEADER_SIZE - 2:])

    def _pending_length(self) -> int:
        if len(self._buf) >= HEADER_SIZE:
            return min(HEADER.unpack_from(self._buf)[4], MAX_PAYLOAD)
        return MAX_PAYLOAD if len(self._buf) else 0

    def next_event(self, deadline: float) -> Frame | Corrupt | None:
        """Return the next frame or refused frame, or None when `deadline` (monotonic) passes.

        A frame that has started but is not complete within `frame_timeout` is refused
        (`Corrupt`), and its first byte dropped so that a real frame inside it can be found.
        """
        while True:
            event = self._parse() if self._buf else None
            if event is not None:
                return event
            now = time.monotonic()
            until = deadline
            if self._buf:                       # a frame may have started at the buffer's head
                if self._started is None:
                    self._started = now
                frame_end = self._started + frame_timeout(self._pending_length(), self._baud)
                if now >= frame_end:
                    self._started = None
                    if len(self._buf) < len(MAGIC):   # a lone first MAGIC byte: garbage
                        self.garbage += len(self._buf)
                        self._buf.clear()
                        continue
                    del self._buf[:1]
                    return Corrupt("a frame stopped arriving before its end (a byte was lost?)")
                until = min(deadline, frame_end)
            if now >= until:
                if now >= deadline:
                    return None
                continue
            data = self._read(HEADER_SIZE + MAX_PAYLOAD + CRC_SIZE, until - now)
            if data:
                self._buf += data


def fd_reader(fd: int) -> Callable[[int, float], bytes]:
    """A `read` for FrameReader over a raw file descriptor (a pty), using poll()."""
    import select

    poller = select.poll()
    poller.register(fd, select.POLLIN)

    def read(n: int, timeout: float) -> bytes:
        if not poller.poll(max(0, int(timeout * 1000))):
            return b""
        return os.read(fd, n)               # OSError (EIO) when the other side is gone
    return read
