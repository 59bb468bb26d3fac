"""The one place that imports TensorFlow, tf_keras and TF-MOT, lazily.

`TF_USE_LEGACY_KERAS=1` must be set before TensorFlow is first imported so that
`tf.keras` is tf_keras (TF-MOT works only on tf_keras models). The package's
`__init__` sets it; this module sets it again in case it was imported alone.

Example:
    >>> from exporter import tf as tfmod
    >>> tf = tfmod.tensorflow()      # imports TensorFlow on first call only
"""
from __future__ import annotations

import functools
import os


def configure_environment() -> None:
    """Set the environment TensorFlow must see before its first import."""
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


configure_environment()


@functools.cache
def tensorflow():
    """Return the `tensorflow` module, importing it on first use."""
    configure_environment()
    from exporter.progress import quiet_native_stderr

    with quiet_native_stderr():
        import tensorflow as tf

        tf.config.list_physical_devices()  # device discovery logs (no CUDA here) stay hidden

    tf.get_logger().setLevel("ERROR")
    return tf


@functools.cache
def keras():
    """Return the `tf_keras` module (Keras 2, the one TF-MOT accepts)."""
    tensorflow()
    import tf_keras

    return tf_keras


@functools.cache
def keras3():
    """Return Keras 3 (the `keras` package), for the Keras 3 bridge (exporter/keras3/) only."""
    tensorflow()
    import keras

    return keras


@functools.cache
def tfmot():
    """Return `tensorflow_model_optimization`."""
    keras()
    import tensorflow_model_optimization as mot

    return mot


@functools.cache
def mlir_quantize():
    """Return TFLite's MLIR quantizer (`tensorflow.lite.python.convert.mlir_quantize`).

    The converter and TF's quantization debugger call it on a calibrated model; exporter/stages/float_layers.py too.
    """
    tensorflow()
    from tensorflow.lite.python.convert import mlir_quantize as quantize

    return quantize


def litert_interpreter_class():
    """Return LiteRT's `Interpreter` class (ai-edge-litert; no TensorFlow import)."""
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter
