"""Keras → TFLite conversion in four modes, batch fixed to 1.

Modes (as in the TFLite post-training quantization guide):
    float32  plain conversion.
    float16  weights stored as float16.
    dynamic  int8 weights, float activations (dynamic-range quantization).
    int8     full-integer: int8 weights and activations, calibrated on a
             representative data set, with int8, uint8 or float32 I/O.

Example:
    >>> from exporter.analysis.graph import Graph
    >>> tflite_bytes = convert(model, ConvertConfig(mode="int8", io_dtype="int8"), calib=demo.calib.x)
    >>> graph = Graph.from_bytes(tflite_bytes)
    >>> graph.input_details()[0].shape, graph.input_details()[0].dtype
    ((1, 8, 8, 1), 'int8')
    >>> convert(model, ConvertConfig(mode="int8"), calib=demo.calib.x[:10])
    Traceback (most recent call last):
    ...
    exporter.errors.DataError: int8 needs at least 32 calibration samples (calib=); got 10
"""
from __future__ import annotations

import re

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from exporter import tf as tfmod
from exporter.errors import ConversionError, DataError
from exporter.option_names import option
from exporter.progress import progress, quiet_native_stderr


class ConvertConfig(BaseModel):
    """How to convert: the mode and, for int8, the I/O dtype and calibration size."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: str = Field("float32", description="float32 | float16 | dynamic | int8")
    io_dtype: str = Field("int8", description="I/O dtype of int8 models: int8 | uint8 | float32")
    calibration_samples: int = Field(200, ge=1, description="most calibration samples used")
    min_calibration_samples: int = Field(32, ge=1, description="fewest calibration samples accepted")


def _configure(converter, tf, config: ConvertConfig, calib: np.ndarray | None):
    """Set the converter's optimizations, types and representative data for `config.mode`."""
    if config.mode == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif config.mode == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif config.mode == "int8":
        if calib is None or len(calib) < config.min_calibration_samples:
            got = 0 if calib is None else len(calib)
            raise DataError(
                f"int8 needs at least {config.min_calibration_samples} calibration samples ({option('calib')}); "
                f"got {got}")
        samples = calib[: config.calibration_samples].astype(np.float32)

        def representative():
            with progress("calibrating int8", total=len(samples)) as advance:
                for row in samples:
                    advance()
                    yield [row[None, ...]]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        io = {"int8": tf.int8, "uint8": tf.uint8, "float32": tf.float32}[config.io_dtype]
        converter.inference_input_type = io
        converter.inference_output_type = io
    elif config.mode != "float32":
        raise ConversionError(f"unknown conversion mode {config.mode!r}")


def convert(model, config: ConvertConfig, *, calib: np.ndarray | None = None) -> bytes:
    """Convert a tf_keras model to TFLite flatbuffer bytes with batch size 1.

    Args:
        model: a single-input tf_keras model.
        config: the conversion mode and its settings.
        calib: calibration samples (required for int8).

    Returns:
        The .tflite bytes.

    Raises:
        DataError: too few calibration samples for int8 (never a silent fallback).
        ConversionError: the converter failed, e.g. on ops TFLite builtins lack (listed).
    """
    tf = tfmod.tensorflow()
    spec = model.inputs[0]
    signature = tf.TensorSpec([1, *spec.shape[1:]], spec.dtype, name=spec.name.split(":")[0])
    function = tf.function(lambda x: model(x, training=False)).get_concrete_function(signature)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    _configure(converter, tf, config, calib)
    try:
        with quiet_native_stderr():
            return bytes(converter.convert())
    except Exception as exc:  # the converter raises many types; all mean "could not convert"
        raise ConversionError(_explain(exc, config.mode)) from exc


def _explain(exc: Exception, mode: str) -> str:
    """A one-line reason for a failed conversion, listing the unsupported TF ops when there are any."""
    text = str(exc)
    ops = sorted(set(re.findall(r"'(tf\.[A-Za-z0-9_]+)'", text)) | set(re.findall(r"\b(tf\.[A-Z][A-Za-z0-9_]+)\b", text)))
    if ops:
        return (f"{mode} conversion failed: ops not supported by TFLite builtins: {', '.join(ops)}. "
                "Replace them with supported layers; see the TFLite op compatibility guide")
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return f"{mode} conversion failed: {first[:400]}"
