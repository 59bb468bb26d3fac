"""What the android bundle's app code is made from: the model's I/O contract, labels, image preprocessing.

Everything comes from the export: the I/O contract from the converted .tflite (`io_record`: names,
buffer slots, shapes, dtypes, scales and zero points), the labels (shipped as `labels.txt`), the
preprocessing image folders were read with (`Artifacts.preprocessing`, manifest.json `preprocessing`)
and the profile's `threads`. A model whose data were arrays has no recorded preprocessing: its image
input (NHWC, 1 or 3 channels) is given `--normalize`'s default, pixel / 255, marked as not recorded.

Example:
    >>> from exporter.analysis.graph import Graph
    >>> from exporter.profile import load_profile
    >>> from targets.base import Artifacts
    >>> artifacts = Artifacts(tflite=tiny_tflite, graph=Graph.from_bytes(tiny_tflite), mode="int8",
    ...                       profile=load_profile("android-arm64-lowend"), source="digits.keras", labels=["a", "b"])
    >>> spec = app_spec(artifacts)
    >>> spec.class_name, spec.threads, spec.labels, [p.dtype for p in spec.inputs], spec.image.recorded
    ('DigitsModel', 1, True, ['int8'], False)
    >>> spec.image.mode, spec.image.mean, spec.image.std, spec.image.color
    ('unit', (0.0,), (255.0,), 'grayscale')
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

__all__ = ["AppSpec", "ImageSpec", "app_spec"]


@dataclass(frozen=True)
class ImageSpec:
    """The image input: its position, size, color and normalization (mean and std per channel, pixel units)."""

    input: int
    height: int
    width: int
    channels: int
    color: str
    mode: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    recorded: bool


@dataclass(frozen=True)
class AppSpec:
    """What the Kotlin class bakes in: `inputs`/`outputs` are `io_record` entries (exporter/io_names.py)."""

    class_name: str
    sha256: str
    threads: int
    inputs: tuple
    outputs: tuple
    label_output: int
    labels: bool
    image: ImageSpec | None
    dynamic: tuple = ()             # (name, shape signature) of each input with dynamic (-1) dims


class _Entry(dict):
    """An `io_record` entry with attribute access (spec.inputs[0].dtype)."""

    __getattr__ = dict.__getitem__


def _image(inputs: list[dict], preprocessing: dict | None) -> ImageSpec | None:
    """The first input shaped (1, height, width, 1 or 3), with the recorded preprocessing or the default one."""
    from exporter.normalization import DEFAULT, normalization

    for k, t in enumerate(inputs):
        shape = t["shape"]
        if len(shape) == 4 and shape[0] == 1 and shape[3] in (1, 3) and min(shape) > 0:
            channels = shape[3]
            color = "RGB" if channels == 3 else "grayscale"
            if preprocessing and preprocessing.get("normalize"):
                norm = preprocessing["normalize"]
                return ImageSpec(k, shape[1], shape[2], channels, color, norm["mode"], tuple(norm["mean"]),
                                 tuple(norm["std"]), True)
            norm = normalization(DEFAULT, channels=channels)
            return ImageSpec(k, shape[1], shape[2], channels, color, norm.mode, norm.mean, norm.std, False)
    return None


def app_spec(artifacts) -> AppSpec:
    """The AppSpec of an export (`targets.base.Artifacts`).

    The class is named after the model's file (`library_name`, as the Arduino library: "model.keras"
    gives EdgexModel, "digits.keras" DigitsModel).
    """
    from exporter.io_names import io_record
    from targets.microcontroller.codegen import library_name

    record = io_record(artifacts.tflite, artifacts.graph, artifacts.io)
    inputs = tuple(_Entry(t) for t in record["inputs"])
    outputs = tuple(_Entry(t) for t in record["outputs"])
    label = next((k for k, t in enumerate(outputs) if t["name"] == record["label_output"]), 0)
    return AppSpec(class_name=library_name(Path(artifacts.source or "model").name),
                   sha256=hashlib.sha256(artifacts.tflite).hexdigest(), threads=int(artifacts.profile.threads),
                   inputs=inputs, outputs=outputs, label_output=label, labels=artifacts.labels is not None,
                   image=_image(record["inputs"], artifacts.preprocessing),
                   dynamic=tuple((t["name"], list(artifacts.graph.tensors[t["index"]].shape_signature))
                                 for t in record["inputs"] if min(artifacts.graph.tensors[t["index"]].shape_signature,
                                                                  default=0) < 0))
