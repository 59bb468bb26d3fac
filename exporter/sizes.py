"""One size vocabulary: the bytes a device stores, the bytes it downloads, the bytes it holds in RAM.

Every report (console, report.md, report.html, --json, manifest.json `sizes`) groups its byte
figures under these three kinds, each figure keeping its own name and source:

| kind | figures (the headline first) |
|---|---|
| stored | `model_flash` (microcontrollers: the compiled model data in flash), `model_flash_uncompressed` (the same without TFLM weight compression), `model_size` (bytes of model.tflite), `flash` (model data + runtime code) |
| downloaded | `gzip_size` (gzip -9 of model.tflite: what an app or OTA update transfers, TF-MOT's "compressed size") |
| ram | `ram` (the model's memory while it runs), `arena` (the TFLM tensor arena, part of `ram`), `arena_uncompressed` |

A figure a target does not measure is left out; a new one joins by being added to `SIZE_KINDS`.

Example:
    >>> from exporter.checks import Measurement
    >>> figures = {"model_size": Measurement("model_size", 45192, "bytes", "measured", "model.tflite file"),
    ...            "gzip_size": Measurement("gzip_size", 30211, "bytes", "measured", "gzip -9 of model.tflite")}
    >>> record = size_record(figures)
    >>> record["stored"][0]["figure"], record["downloaded"][0]["bytes"], record["ram"]
    ('model_size', 30211, [])
    >>> size_line(figures)
    'sizes: stored 45,192 B (model_size) · downloaded 30,211 B (gzip_size)'
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SizeKind:
    """One kind of size: its key in `size_record`, its heading, what it means, and its figures in order."""

    key: str
    title: str
    meaning: str
    figures: dict[str, str]          # figure name -> what it counts; the first present is the headline


SIZE_KINDS = (
    SizeKind("stored", "stored", "bytes the device keeps in its storage (flash on a microcontroller)", {
        "model_flash": "the model data compiled for the microcontroller, in flash (as shipped)",
        "model_flash_uncompressed": "the model data in flash without TFLM weight compression",
        "model_size": "bytes of model.tflite",
        "model_size_dense": "bytes of model.tflite without sparse encoding (android, linux: exporter/sparse/)",
        "flash": "model data + the runtime's code, in flash",
    }),
    SizeKind("downloaded", "downloaded", "bytes sent to the device: gzip -9 of model.tflite", {
        "gzip_size": "gzip -9 of model.tflite (TF-MOT's compressed size)",
    }),
    SizeKind("ram", "in RAM", "bytes the device holds in memory while the model runs", {
        "ram": "the model's memory while it runs (weights, activations, runtime)",
        "arena": "the TFLM tensor arena (part of ram)",
        "arena_uncompressed": "the TFLM tensor arena without weight compression (decoding needs scratch)",
    }),
)


def size_record(measurements: dict) -> dict[str, list[dict]]:
    """The byte figures of a report by kind: {"stored": [...], "downloaded": [...], "ram": [...]}.

    Args:
        measurements: figure name -> Measurement (a report's `measurements`).

    Returns:
        Each kind's figures present in `measurements`, headline first, as
        {"figure", "bytes", "source", "meaning"}.
    """
    out = {}
    for kind in SIZE_KINDS:
        out[kind.key] = [{"figure": name, "bytes": measurements[name].value, "source": measurements[name].source,
                          "meaning": meaning}
                         for name, meaning in kind.figures.items()
                         if name in measurements and measurements[name].value is not None]
    return out


def size_rows(measurements: dict) -> list[list]:
    """Table rows (kind, figure, exact bytes, source, meaning), for report.md and report.html."""
    record = size_record(measurements)
    return [[kind.title, f["figure"], f"{f['bytes']:,} B", f["source"], f["meaning"]]
            for kind in SIZE_KINDS for f in record[kind.key]]


SIZE_HEADERS = ["size", "figure", "value", "source", "what it counts"]


def size_line(measurements: dict) -> str:
    """One line with each kind's headline figure, e.g. `sizes: stored 45,192 B (model_size) · ...`."""
    record = size_record(measurements)
    parts = [f"{kind.title} {f['bytes']:,} B ({f['figure']})"
             for kind in SIZE_KINDS for f in record[kind.key][:1]]
    return "sizes: " + " · ".join(parts)
