"""What `edgex inspect` says about a .tflite's TFLite metadata.

`found_in` reads it (exporter/tflite_metadata/model_file.py `read`): the metadata in flatc's JSON
shape and the names of the associated files, `{"error": ...}` when the TFLITE_METADATA buffer is
not readable (inspect still shows the graph), None when the model has none. `lines` turns that
into a few lines of text.

Example:
    >>> from exporter.tflite_metadata.flatbuf import pack
    >>> from exporter.tflite_metadata.model_file import insert
    >>> model = insert(tiny_tflite, pack({"name": "tiny", "version": "2", "author": "Jane"}), {"labels.txt": b"a\\n"})
    >>> print("\\n".join(lines(found_in(model))))
    TFLite metadata: 'tiny' version '2', author 'Jane' (min parser version None)
      associated files: labels.txt
    >>> lines(found_in(tiny_tflite))
    ['TFLite metadata: none']
"""
from __future__ import annotations

from exporter.errors import ModelFileError


def found_in(data: bytes) -> dict | None:
    """The model's TFLite metadata for `edgex inspect` (see the module docstring)."""
    from exporter.tflite_metadata.model_file import read

    try:
        return read(data)
    except ModelFileError as exc:
        return {"error": str(exc)}


def _tensor_line(kind: str, t: dict) -> str:
    parts = [f"  {kind} {t['name']!r}: " + (f"{(t.get('color_space') or 'unknown').lower()} image"
                                             if t.get("content") == "ImageProperties" else
                                             "features" if t.get("content") else "content not given")]
    norm = t.get("normalization")
    if norm:
        parts.append(f"normalization mean {norm['mean']} std {norm['std']}")
    stats = t.get("stats") or {}
    if stats.get("min") is not None and stats.get("max") is not None:
        parts.append("values " + ", ".join(f"{low:g}..{high:g}" for low, high in zip(stats["min"], stats["max"])))
    parts += [f"{f['name']} ({f['type']})" for f in t.get("associated_files") or ()]
    return ", ".join(parts)


def lines(found: dict | None) -> list[str]:
    """Text lines: the model fields, one line per input and output, the associated files."""
    from exporter.tflite_metadata.content import record

    if found is None:
        return ["TFLite metadata: none"]
    if "error" in found:
        return [f"TFLite metadata: unreadable ({found['error']})"]
    rec = record(found["metadata"], found["associated_files"], source="the model file")
    head = f"TFLite metadata: {rec['name']!r} version {rec['version']!r}"
    head += "".join(f", {key} {rec[key]!r}" for key in ("author", "license") if rec.get(key))
    out = [f"{head} (min parser version {rec['min_parser_version']})"]
    out += [f"  description: {rec['description']}"] if rec.get("description") else []
    out += [_tensor_line(kind, t) for kind, items in (("input", rec["inputs"]), ("output", rec["outputs"]))
            for t in items]
    return out + ([f"  associated files: {', '.join(rec['associated_files'])}"] if rec["associated_files"] else [])
