"""Write and read TFLite metadata flatbuffers from the schema description in schema.py.

`pack` builds a buffer with the `flatbuffers` package's Builder (children before parents, each
table's fields in their slots, the "M001" file identifier), as flatc-generated code would.
`unpack` reads one back into the same dict shape, flatc's JSON shape: enums by name, unions as
`<name>_type` + `<name>`, and scalars equal to their default (0, the first enum value) left out, as
flatc's JSON leaves them. The reader checks every offset, length and string before it uses it
(a .tflite from outside may hold any bytes there): a buffer it cannot read raises ValueError, and
a budget of items stops a buffer whose tables share their children over and over.

Example:
    >>> buf = pack({"name": "digits", "subgraph_metadata": [{"input_tensor_metadata": [
    ...     {"name": "image", "content": {"content_properties_type": "ImageProperties",
    ...                                   "content_properties": {"color_space": "GRAYSCALE"}}}]}]})
    >>> buf[4:8]
    b'M001'
    >>> unpack(buf)["subgraph_metadata"][0]["input_tensor_metadata"][0]["content"]
    {'content_properties_type': 'ImageProperties', 'content_properties': {'color_space': 'GRAYSCALE'}}
"""
from __future__ import annotations

import math
import struct

from exporter.tflite_metadata.schema import ENUMS, FILE_IDENTIFIER, ROOT, TABLES, UNIONS, Field

MAX_ITEMS = 200_000
"""At most this many tables, strings and vector elements are read from one buffer."""

_VECTOR_PREPEND = {"float": ("PrependFloat32", 4), "uint": ("PrependUint32", 4), "int": ("PrependInt32", 4),
                   "ubyte": ("PrependUint8", 1)}
_SLOT_PREPEND = {"float": "PrependFloat32Slot", "uint": "PrependUint32Slot", "int": "PrependInt32Slot",
                 "ubyte": "PrependUint8Slot"}
_FORMATS = {"float": ("<f", 4), "uint": ("<I", 4), "int": ("<i", 4), "ubyte": ("<B", 1), "byte": ("<b", 1)}
_VECTOR_ALIGN = {"ubyte": 16}       # CustomMetadata.data is `(force_align: 16)`


def float32(value: float) -> float:
    """The float32 nearest `value`, as the shortest decimal that gives it back (58.395, not 58.39500045776367).

    Example:
        >>> float32(58.395), float32(1 / 3), float32(0.1) == 0.1
        (58.395, 0.33333334, True)
    """
    exact = struct.unpack("<f", struct.pack("<f", float(value)))[0]
    if not math.isfinite(exact):
        return exact
    for digits in range(1, 10):                # 9 significant digits always give a float32 back
        shown = float(f"{exact:.{digits}g}")
        if struct.unpack("<f", struct.pack("<f", shown))[0] == exact:
            return shown
    return exact


def pack(value: dict, table: str = ROOT) -> bytes:
    """The flatbuffer of `value`, a `table` (default ModelMetadata), with the "M001" identifier.

    Raises:
        ValueError: a key the table does not have, or an enum or union member it does not know.
    """
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(_table(builder, table, value), FILE_IDENTIFIER)
    return bytes(builder.Output())


def _index(names: tuple[str, ...], name, what: str) -> int:
    if name not in names:
        raise ValueError(f"{what} has no member {name!r} (known: {', '.join(names)})")
    return names.index(name)


def _table(builder, table: str, value: dict) -> int:
    fields = TABLES[table]
    unknown = sorted(set(value) - {f.name for f in fields})
    if unknown:
        raise ValueError(f"table {table} has no field {', '.join(unknown)}")
    offsets = {f.slot: _child(builder, f, value) for f in fields
               if value.get(f.name) is not None and (f.vector or f.kind in ("string", "table", "union"))}
    builder.StartObject(len(fields))
    for f in fields:
        v = value.get(f.name)
        if v is None:
            continue
        if f.slot in offsets:
            builder.PrependUOffsetTRelativeSlot(f.slot, offsets[f.slot], 0)
        elif f.kind == "utype":
            builder.PrependUint8Slot(f.slot, _index(UNIONS[f.type], v, f.type) + 1, 0)
        elif f.kind == "enum":
            builder.PrependInt8Slot(f.slot, _index(ENUMS[f.type], v, f.type), 0)
        else:
            getattr(builder, _SLOT_PREPEND[f.type])(f.slot, v, 0)
    return builder.EndObject()


def _child(builder, f: Field, owner: dict) -> int:
    """The offset of a string, table, union member or vector field, built before its table starts."""
    v = owner[f.name]
    if not f.vector:
        if f.kind == "string":
            return builder.CreateString(v)
        member = UNIONS[f.type][_index(UNIONS[f.type], owner.get(f"{f.name}_type"), f.type)] \
            if f.kind == "union" else f.type
        return _table(builder, member, v)
    if f.kind in ("string", "table"):
        items = [builder.CreateString(s) if f.kind == "string" else _table(builder, f.type, s) for s in v]
        builder.StartVector(4, len(items), 4)
        for item in reversed(items):
            builder.PrependUOffsetTRelative(item)
        return builder.EndVector()
    prepend, size = _VECTOR_PREPEND[f.type] if f.kind == "scalar" else ("PrependInt8", 1)
    builder.StartVector(size, len(v), _VECTOR_ALIGN.get(f.type, size))
    for item in reversed(v):
        getattr(builder, prepend)(_index(ENUMS[f.type], item, f.type) if f.kind == "enum" else item)
    return builder.EndVector()


class _Reader:
    """Bounds-checked reads of one flatbuffer."""

    def __init__(self, buf: bytes):
        self.buf = bytes(buf)
        self.items = 0

    def count(self, n: int = 1) -> None:
        self.items += n
        if self.items > MAX_ITEMS:
            raise ValueError(f"more than {MAX_ITEMS:,} items")

    def get(self, fmt: str, size: int, off: int):
        if off < 0 or off + size > len(self.buf):
            raise ValueError(f"offset {off} lies outside the {len(self.buf)}-byte buffer")
        return struct.unpack_from(fmt, self.buf, off)[0]

    def deref(self, at: int) -> int:
        return at + self.get("<I", 4, at)

    def string(self, at: int) -> str:
        start = self.deref(at)
        length = self.get("<I", 4, start)
        if start + 4 + length > len(self.buf):
            raise ValueError(f"a string of {length} bytes runs past the buffer")
        self.count()
        try:
            return self.buf[start + 4:start + 4 + length].decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("a string is not UTF-8 text") from None

    def vector(self, at: int, size: int) -> tuple[int, int]:
        start = self.deref(at)
        n = self.get("<I", 4, start)
        if start + 4 + n * size > len(self.buf):
            raise ValueError(f"a vector of {n} items runs past the buffer")
        self.count(n)
        return start + 4, n


def _read_field(r: _Reader, f: Field, at: int, out: dict):
    """The value of field `f` stored at `at`; None to leave it out (a default scalar)."""
    if f.kind == "utype":
        value = r.get("<B", 1, at)
        return None if value == 0 else UNIONS[f.type][value - 1] if value <= len(UNIONS[f.type]) else value
    if f.kind == "union":
        member = out.get(f"{f.name}_type")
        return _read_table(r, r.deref(at), member) if isinstance(member, str) else None
    if f.vector:
        size = 1 if f.kind == "enum" or f.type == "ubyte" else 4
        start, n = r.vector(at, size)
        return [_item(r, f, start + i * size) for i in range(n)]
    return _item(r, f, at, default_none=True)


def _item(r: _Reader, f: Field, at: int, default_none: bool = False):
    if f.kind == "string":
        return r.string(at)
    if f.kind == "table":
        return _read_table(r, r.deref(at), f.type)
    fmt, size = _FORMATS["byte" if f.kind == "enum" else f.type]
    value = r.get(fmt, size, at)
    if default_none and value == 0:
        return None
    if f.type == "float":
        return float32(value)
    if f.kind == "enum":
        return ENUMS[f.type][value] if 0 <= value < len(ENUMS[f.type]) else value
    return value


def _read_table(r: _Reader, pos: int, table: str) -> dict:
    r.count()
    vtable = pos - r.get("<i", 4, pos)
    vt_len = r.get("<H", 2, vtable)
    out: dict = {}
    for f in TABLES[table]:
        entry = 4 + 2 * f.slot
        field_off = r.get("<H", 2, vtable + entry) if entry + 2 <= vt_len else 0
        if field_off:
            value = _read_field(r, f, pos + field_off, out)
            if value is not None:
                out[f.name] = value
    for f in TABLES[table]:                       # a union type without its member: flatc prints neither
        if f.kind == "utype" and f.name[:-len("_type")] not in out:
            out.pop(f.name, None)
    return out


def unpack(buf: bytes, table: str = ROOT) -> dict:
    """Read a metadata flatbuffer (a `table`, default ModelMetadata) into a dict.

    Raises:
        ValueError: not a metadata buffer ("M001"), or offsets, lengths or text that do not hold up.
    """
    r = _Reader(buf)
    if len(r.buf) < 8 or r.buf[4:8] != FILE_IDENTIFIER:
        raise ValueError(f"it lacks the {FILE_IDENTIFIER.decode()!r} file identifier")
    try:
        return _read_table(r, r.deref(0), table)
    except (struct.error, RecursionError) as exc:
        raise ValueError(str(exc)) from None
