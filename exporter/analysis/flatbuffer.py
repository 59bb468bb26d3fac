"""Careful reading of a `.tflite` flatbuffer: vector lengths and buffers within the file, strict text.

The `tflite` package reads whatever offsets a file holds; these helpers check what it returns
before the analysis uses it. Every string a runtime later decodes (tensor, subgraph and
signature names, custom op codes, metadata names) must be UTF-8: LiteRT's Python API raises
UnicodeDecodeError on anything else, so such a file is refused up front as "not a valid TFLite
model" (ModelFileError, exit 2) rather than failing half-way through an export.

Example:
    >>> import tflite
    >>> model = tflite.Model.GetRootAs(tiny_tflite, 0)
    >>> check_strings(model, tiny_tflite)           # raises ModelFileError on a corrupt name
    >>> text(model.Subgraphs(0).Name(), "subgraph 0 name")
    'main'
    >>> text("conv_é".encode("latin-1"), "subgraph 0 tensor 3 name")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    exporter.errors.ModelFileError: not a valid TFLite model: subgraph 0 tensor 3 name is not UTF-8 text ...
"""
from __future__ import annotations

from exporter.errors import ModelFileError


def invalid(reason: str) -> ModelFileError:
    """The error for a file that is not a valid TFLite model (the caller raises it)."""
    return ModelFileError(f"not a valid TFLite model: {reason}")


def check_len(n: int, data: bytes, what: str) -> int:
    """Return a vector length after checking it can fit in the file (4 bytes per offset)."""
    if n < 0 or n * 4 > len(data):
        raise invalid(f"{what} vector length {n} exceeds the file")
    return n


def vec(obj, name: str) -> list:
    """Return a flatbuffer scalar vector as a list ([] when absent)."""
    arr = getattr(obj, name + "AsNumpy")()
    return [] if isinstance(arr, int) else arr.tolist()


def buffer_size(buf, data: bytes) -> int:
    """Return the byte size of a Buffer table, checking it lies in the file."""
    if buf is None:
        return 0
    if buf.Offset() > 1:  # large models keep buffers after the flatbuffer
        if buf.Offset() + buf.Size() > len(data):
            raise invalid("external buffer lies outside the file")
        return int(buf.Size())
    arr = buf.DataAsNumpy()  # a bounds-checked view, no copy
    return 0 if isinstance(arr, int) else int(arr.size)


def text(raw: bytes | None, what: str) -> str:
    """Decode a flatbuffer string strictly as UTF-8 ("" when absent).

    Args:
        raw: the bytes the `tflite` package returned.
        what: what the string is, for the message ("tensor 3 name").

    Returns:
        The text.

    Raises:
        ModelFileError: the bytes are not UTF-8 (a corrupt or hostile file).
    """
    try:
        return (raw or b"").decode("utf-8")
    except UnicodeDecodeError:
        shown = (raw or b"")[:40].decode("utf-8", "replace")
        raise invalid(f"{what} is not UTF-8 text ({shown!r}); the file is corrupt") from None


def check_strings(model, data: bytes) -> None:
    """Check every string a TFLite runtime decodes, in all subgraphs and signatures.

    Args:
        model: the `tflite.Model` root.
        data: the file's bytes (to bound vector lengths).

    Raises:
        ModelFileError: a string that is not UTF-8, or a vector longer than the file.
    """
    for s in range(check_len(model.SubgraphsLength(), data, "subgraphs")):
        sub = model.Subgraphs(s)
        text(sub.Name(), f"subgraph {s} name")
        for t in range(check_len(sub.TensorsLength(), data, f"subgraph {s} tensors")):
            text(sub.Tensors(t).Name(), f"subgraph {s} tensor {t} name")
    for k in range(check_len(model.SignatureDefsLength(), data, "signatures")):
        sig = model.SignatureDefs(k)
        key = text(sig.SignatureKey(), f"signature {k} key")
        for kind, length, get in (("input", sig.InputsLength, sig.Inputs), ("output", sig.OutputsLength, sig.Outputs)):
            for i in range(check_len(length(), data, f"signature {key!r} {kind}s")):
                text(get(i).Name(), f"signature {key!r} {kind} {i} name")
    for c in range(check_len(model.OperatorCodesLength(), data, "operator codes")):
        text(model.OperatorCodes(c).CustomCode(), f"operator code {c} custom name")
    for m in range(check_len(model.MetadataLength(), data, "metadata")):
        text(model.Metadata(m).Name(), f"metadata {m} name")


def builtin_code(opcode) -> int:
    """An operator code's builtin code, max(deprecated_builtin_code, builtin_code), as TFLite's schema_utils reads it.

    The `tflite` package's `BuiltinCode()` returns `deprecated_builtin_code` for codes below 127, so an operator
    code that sets only `builtin_code` (TFLM's compressor writes its TFLM_DECODE op as CUSTOM = 32 with the
    deprecated field left 0) would read as ADD. This reads the field itself (schema slot 3, vtable offset 10).
    """
    import flatbuffers

    offset = opcode._tab.Offset(10)
    raw = opcode._tab.Get(flatbuffers.number_types.Int32Flags, offset + opcode._tab.Pos) if offset else 0
    return max(int(opcode.DeprecatedBuiltinCode()), int(raw))

