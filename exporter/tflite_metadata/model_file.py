"""TFLite metadata in a .tflite: inserted as tflite-support's MetadataPopulator does, and read back.

Insertion follows tensorflow_lite_support/metadata/python/metadata.py (`MetadataPopulator`):
the model is unpacked with the TFLite schema's object API (`ai_edge_litert.schema_py_generated`,
`ModelT`), the metadata flatbuffer goes into a new `Buffer`, a `Metadata` entry named
"TFLITE_METADATA" points at it (an existing entry of that name has its buffer replaced), and the
model is packed again with the "TFL3" identifier. Associated files are then appended after the
flatbuffer as a zip archive (Python's `zipfile` in append mode, so its offsets count from the start of
the file), stored uncompressed: tflite-support's C++ extractor (metadata_extractor.cc) and Java
`ZipFile` read only uncompressed members. One thing differs from the populator, on purpose: zip
members carry a fixed date, so the same export gives the same bytes. Buffers keep 4-byte aligned
data, as the converter writes them (the generated `Pack` puts a byte vector right after its 4-byte
length), which is what the metadata extractor's flatbuffer verifier needs of the metadata buffer.

A model keeping buffers outside the flatbuffer (models over 2 GB) cannot be re-packed this way
and is refused.

Example:
    >>> from exporter.tflite_metadata.flatbuf import pack
    >>> model = insert(tiny_tflite, pack({"name": "tiny"}), {"labels.txt": b"a\\nb\\n"})
    >>> read(model)
    {'metadata': {'name': 'tiny'}, 'associated_files': ['labels.txt']}
    >>> read(tiny_tflite) is None
    True
"""
from __future__ import annotations

import io
import zipfile

from exporter.errors import ConversionError, ModelFileError

METADATA_NAME = "TFLITE_METADATA"
"""The name of the model's `Metadata` entry holding the metadata flatbuffer (`METADATA_FIELD_NAME`)."""
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def _entry_name(entry) -> str:
    name = entry.name
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name or "")


def insert(tflite: bytes, metadata: bytes, files: dict[str, bytes]) -> bytes:
    """`tflite` with `metadata` as its TFLITE_METADATA and `files` appended as a zip.

    Args:
        tflite: the model (a trailing zip of earlier associated files is dropped).
        metadata: a ModelMetadata flatbuffer (exporter/tflite_metadata/flatbuf.py `pack`).
        files: associated file name -> bytes, in the order they are stored.

    Returns:
        The new model's bytes.

    Raises:
        ConversionError: the model keeps buffers outside its flatbuffer.
        ModelFileError: a model the schema's object API cannot unpack.
    """
    import numpy as np
    from ai_edge_litert import schema_py_generated as schema

    model = unpack(tflite, "add TFLite metadata")
    buffers = list(model.buffers or ())
    entries = list(model.metadata or ())
    holder = schema.BufferT(data=np.frombuffer(metadata, np.uint8))
    existing = [e for e in entries if _entry_name(e) == METADATA_NAME]
    if existing:
        buffers[existing[0].buffer] = holder
    else:
        buffers.append(holder)
        entry = schema.MetadataT()
        entry.name, entry.buffer = METADATA_NAME, len(buffers) - 1
        entries.append(entry)
    model.buffers, model.metadata = buffers, entries
    return _append_zip(repack(model, len(tflite) + len(metadata)), files)


def unpack(tflite: bytes, purpose: str):
    """The model as the TFLite schema's object API (`ModelT`), to change it and `repack` it.

    Args:
        tflite: the model's bytes.
        purpose: what the caller re-packs it for, for messages ("add TFLite metadata").

    Raises:
        ModelFileError: a model the object API cannot unpack.
        ConversionError: the model keeps buffers outside its flatbuffer (over 2 GB).
    """
    from ai_edge_litert import schema_py_generated as schema

    try:
        model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(tflite, 0))
    except Exception as exc:                  # the object API fails in many ways on a file it cannot read
        raise ModelFileError(f"not a valid TFLite model: it cannot be unpacked to {purpose} "
                             f"({type(exc).__name__}: {exc})") from None
    if model.externalBuffers or model.externalBufferGroups or any((b.offset or 0) > 1 for b in model.buffers or ()):
        raise ConversionError(f"cannot {purpose}: the model keeps its weights outside the flatbuffer "
                              "(a model over 2 GB), which cannot be re-packed")
    return model


def repack(model, size_hint: int) -> bytes:
    """The bytes of an unpacked (and changed) model, with the "TFL3" identifier; buffers 4-byte aligned."""
    import flatbuffers

    builder = flatbuffers.Builder(size_hint + 4096)
    builder.Finish(model.Pack(builder), b"TFL3")
    return bytes(builder.Output())


def _append_zip(model: bytes, files: dict[str, bytes]) -> bytes:
    if not files:
        return model
    out = io.BytesIO(model)
    out.seek(0, io.SEEK_END)
    with zipfile.ZipFile(out, "a", zipfile.ZIP_STORED) as archive:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o100644 << 16
            archive.writestr(info, data)
    return out.getvalue()


def metadata_buffer(tflite: bytes) -> bytes | None:
    """The bytes of the model's TFLITE_METADATA buffer; None when it has none.

    Raises:
        ModelFileError: the model's metadata entries or buffers cannot be read.
    """
    import tflite as schema

    from exporter.analysis.flatbuffer import check_len, invalid

    data = bytes(tflite)
    try:
        model = schema.Model.GetRootAs(data, 0)
        for m in range(check_len(model.MetadataLength(), data, "metadata")):
            entry = model.Metadata(m)
            if (entry.Name() or b"") != METADATA_NAME.encode():
                continue
            if not 0 <= entry.Buffer() < check_len(model.BuffersLength(), data, "buffers"):
                raise invalid(f"{METADATA_NAME} refers to missing buffer {entry.Buffer()}")
            raw = model.Buffers(entry.Buffer()).DataAsNumpy()
            return b"" if isinstance(raw, int) else raw.tobytes()
    except ModelFileError:
        raise
    except Exception as exc:                  # the flatbuffer reader fails in many ways on a corrupt file
        raise invalid(f"its metadata entries cannot be read ({type(exc).__name__})") from None
    return None


def associated_files(tflite: bytes) -> list[str]:
    """The names of the files zipped after the flatbuffer ([] when there is no readable zip); nothing is extracted."""
    try:
        with zipfile.ZipFile(io.BytesIO(tflite)) as archive:
            return archive.namelist()
    except Exception:                         # not a zip, or a damaged one: no associated files to list
        return []


def read(tflite: bytes) -> dict | None:
    """The model's TFLite metadata as {"metadata": dict, "associated_files": [names]}; None when it has none.

    Raises:
        ModelFileError: a TFLITE_METADATA buffer that is not a readable metadata flatbuffer.
    """
    from exporter.tflite_metadata.flatbuf import unpack

    buffer = metadata_buffer(tflite)
    if buffer is None:
        return None
    try:
        content = unpack(buffer)
    except ValueError as exc:
        raise ModelFileError(f"the model's {METADATA_NAME} is not readable metadata: {exc}") from None
    return {"metadata": content, "associated_files": associated_files(tflite)}
