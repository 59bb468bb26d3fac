"""Keras → TFLite conversion in five modes, batch fixed to 1.

Modes (as in the TFLite post-training quantization guide):
    float32  plain conversion.
    float16  weights stored as float16.
    dynamic  int8 weights, float activations (dynamic-range quantization).
    int8     full-integer: int8 weights and activations, calibrated on a
             representative data set, with int8, uint8 or float32 I/O;
             `float_layers` keeps the named Keras layers' ops in float
             (exporter/stages/float_layers.py).
    int16x8  int16 activations, int8 weights (TFLite's 16x8 mode), calibrated
             like int8, with float32 I/O: more accurate than int8 where
             activations span a wide range, run by LiteRT's builtin (reference)
             kernels, not XNNPACK.

`ConvertConfig(sparse=True)` adds `tf.lite.Optimize.EXPERIMENTAL_SPARSITY` to any mode's optimizations: weights
at least 30 % zeros are stored in TFLite's sparse encoding (exporter/sparse/ decides when, and for which targets).

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

A model with several inputs or outputs is converted through a function whose signature names its
inputs and outputs after the Keras model's (`input_names`, `output_names`: the original model's, which
TF-MOT's wrappers may rename), so the .tflite's `serving_default` signature maps each name to its
tensor (the converter orders the tensors its own way; exporter/io_names.py). Its calibration data are a
tuple of arrays in the model's input order, fed to the converter as dicts keyed by those names.
"""
from __future__ import annotations

import re

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from exporter import tf as tfmod
from exporter.errors import ConversionError, DataError
from exporter.option_names import option
from exporter.progress import progress, quiet_native_stderr
from exporter.quant_modes import FULL_INTEGER
from exporter.session import raise_if_interrupted


class ConvertConfig(BaseModel):
    """How to convert: the mode and, for int8, the I/O dtype and calibration size."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: str = Field("float32", description="float32 | float16 | dynamic | int8 | int16x8")
    io_dtype: str = Field("int8", description="I/O dtype of int8 models: int8 | uint8 | float32")
    calibration_samples: int = Field(200, ge=1, description="most calibration samples used")
    min_calibration_samples: int = Field(32, ge=1, description="fewest calibration samples accepted")
    input_shape: tuple[int, ...] | None = Field(None, description="the static input shape to convert at, for a "
                                                "model with dynamic (None) dims; default: batch 1 and the model's")
    input_shapes: tuple[tuple[int, ...], ...] | None = Field(None, description="the same per input, for a model "
                                                             "with several inputs")
    input_names: tuple[str, ...] | None = Field(None, description="names of the inputs in the .tflite signature "
                                                "(several inputs or outputs); default: the model's")
    output_names: tuple[str, ...] | None = Field(None, description="names of the outputs in the .tflite signature "
                                                 "(several inputs or outputs); default: the model's")
    sparse: bool = Field(False, description="also store sparse weights in TFLite's sparse encoding "
                         "(tf.lite.Optimize.EXPERIMENTAL_SPARSITY; exporter/sparse/)")
    float_layers: tuple[str, ...] = Field((), description="int8 only: Keras layers whose ops stay float32, the "
                                          "rest int8 (exporter/stages/float_layers.py); never with `sparse`")

    @model_validator(mode="after")
    def _float_layers_need_int8(self):
        if self.float_layers and (self.mode != "int8" or self.sparse):
            raise ValueError("float_layers needs mode int8 without sparse")
        return self


def _configure(converter, tf, config: ConvertConfig, calib, names: list[str] | None = None):
    """Set the converter's optimizations, types and representative data for `config.mode`."""
    if config.mode == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif config.mode == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif config.mode in FULL_INTEGER:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = _representative(config, calib, names)
        if config.mode == "int16x8":      # float32 I/O: the converter's default for 16x8
            ops = tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
            converter.target_spec.supported_ops = [ops]
        else:
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            io = {"int8": tf.int8, "uint8": tf.uint8, "float32": tf.float32}[config.io_dtype]
            converter.inference_input_type = io
            converter.inference_output_type = io
    elif config.mode != "float32":
        raise ConversionError(f"unknown conversion mode {config.mode!r}")


def _representative(config: ConvertConfig, calib, names: list[str] | None):
    """The converter's representative dataset: up to `calibration_samples` rows of `calib`, with a progress bar.

    Raises:
        DataError: fewer than `min_calibration_samples` rows.
    """
    parts = () if calib is None else calib if isinstance(calib, tuple) else (calib,)
    got = len(parts[0]) if parts else 0
    if got < config.min_calibration_samples:
        raise DataError(f"{config.mode} needs at least {config.min_calibration_samples} calibration samples "
                        f"({option('calib')}); got {got}")
    samples = [a[: config.calibration_samples].astype(np.float32) for a in parts]

    def representative():
        with progress(f"calibrating {config.mode}", total=len(samples[0])) as advance:
            for i in range(len(samples[0])):
                advance()
                rows = [a[i][None, ...] for a in samples]
                yield dict(zip(names, rows)) if names else rows

    return representative


def convert(model, config: ConvertConfig, *, calib: np.ndarray | None = None) -> bytes:
    """Convert a tf_keras model to TFLite flatbuffer bytes with batch size 1.

    Args:
        model: a tf_keras model.
        config: the conversion mode and its settings.
        calib: calibration samples (required for int8 and int16x8): an array, or for several inputs a tuple of arrays
            in the model's input order.

    Returns:
        The .tflite bytes.

    Raises:
        DataError: too few calibration samples for int8 or int16x8 (never a silent fallback).
        ConversionError: the converter failed, e.g. on ops TFLite builtins lack (listed), or a layer of
            `float_layers` has no op of its own.
    """
    tf = tfmod.tensorflow()
    names = None
    if len(model.inputs) == 1 and len(model.outputs) == 1:
        spec = model.inputs[0]
        shape = config.input_shape or [1, *spec.shape[1:]]
        signature = tf.TensorSpec(list(shape), spec.dtype, name=spec.name.split(":")[0])
        function = tf.function(lambda x: model(x, training=False)).get_concrete_function(signature)
    else:
        function, names = _named_function(tf, model, config)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], _variables_of(tf, function))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    _configure(converter, tf, config, calib, names)
    if config.sparse:     # with DEFAULT too: the converter encodes float and quantized weights alike (lite.py)
        converter.optimizations = [*converter.optimizations, tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
    try:
        with quiet_native_stderr():
            if config.float_layers:
                from exporter.stages.float_layers import quantize_keeping_float

                tflite = quantize_keeping_float(converter, model, config)
            else:
                tflite = bytes(converter.convert())
    except ConversionError:
        raise
    except Exception as exc:  # the converter raises many types; all mean "could not convert"
        raise_if_interrupted(exc)          # a Ctrl-C or SIGTERM TensorFlow turned into another exception
        raise ConversionError(_explain(exc, config.mode)) from exc
    raise_if_interrupted()                 # one the converter swallowed (it falls back on any Exception)
    return tflite


def _variables_of(tf, function):
    """What the converter saves as a SavedModel before converting: a module of only the variables `function` reads.

    Given the Keras model instead, the converter saves its whole object graph (optimizer, TF-MOT wrappers):
    the same .tflite bytes, measured 4x slower on MobileNetV2 (18.8 s against 4.2 s, float32).
    """
    module = tf.Module()
    module.read = list(function.graph.variables)
    return module


def _named_function(tf, model, config: ConvertConfig):
    """A concrete function of a model with several inputs or outputs, its signature named as the Keras model's.

    Returns:
        (the function, its input names in the model's order).
    """
    inputs = list(config.input_names or model.input_names)
    outputs = list(config.output_names or model.output_names)
    shapes = config.input_shapes or [[1, *t.shape[1:]] for t in model.inputs]
    specs = [tf.TensorSpec(list(shape), t.dtype, name=name) for t, name, shape in zip(model.inputs, inputs, shapes)]
    several = len(model.outputs) > 1

    def call(*args):
        result = model(list(args) if len(args) > 1 else args[0], training=False)
        return dict(zip(outputs, result if several else [result]))

    return tf.function(call).get_concrete_function(*specs), inputs


def _explain(exc: Exception, mode: str) -> str:
    """A one-line reason for a failed conversion, listing the unsupported TF ops when there are any."""
    text = str(exc)
    ops = sorted(set(re.findall(r"'(tf\.[A-Za-z0-9_]+)'", text)) | set(re.findall(r"\b(tf\.[A-Z][A-Za-z0-9_]+)\b", text)))
    if ops:
        return (f"{mode} conversion failed: ops not supported by TFLite builtins: {', '.join(ops)}. "
                "Replace them with supported layers; see the TFLite op compatibility guide")
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return f"{mode} conversion failed: {first[:400]}"
