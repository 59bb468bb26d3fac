"""Small .tflite models with dynamic input dims, made the way other tools make them.

Each is a `tf.function` with fixed weights converted by `tf.lite.TFLiteConverter.from_concrete_functions`:
given an input signature with `None` sizes the file's input gets a -1 shape signature; given a static
one (the same weights) it is the static twin to compare against.
"""
from __future__ import annotations

import numpy as np

FEATURES = 4          # sensor model: [batch, time, 4] -> conv1d(8, kernel 3) -> mean over time -> dense(5) -> softmax
CLASSES = 5
FRAME, HOP, BINS = 64, 32, 16      # audio front-end: [batch, samples] -> frames of 64 every 32 -> dense(16) -> dense(3)


def _tf():
    from exporter import tf as tfmod

    return tfmod.tensorflow()


def _convert(tf, fn, spec, *, int8: bool = False) -> bytes:
    """Convert `fn` traced at `spec`; int8: full-integer with int8 I/O, calibrated on random data of 50 steps."""
    function = tf.function(fn, input_signature=[spec])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function.get_concrete_function()], function)
    if int8:
        rng = np.random.default_rng(0)
        shape = [1 if d is None and k == 0 else 50 if d is None else d for k, d in enumerate(spec.shape.as_list())]
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([rng.standard_normal(shape).astype(np.float32)] for _ in range(40))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = converter.inference_output_type = tf.int8
    return bytes(converter.convert())


def sensor_tflite(shape=(None, None, FEATURES), *, int8: bool = False) -> bytes:
    """conv1d → mean over time → dense → softmax; input named "features" of `shape` (None: dynamic)."""
    tf = _tf()
    rng = np.random.default_rng(7)
    kernel = tf.constant(rng.standard_normal((3, FEATURES, 8)).astype(np.float32))
    dense = tf.constant(rng.standard_normal((8, CLASSES)).astype(np.float32))

    def model(x):
        y = tf.nn.relu(tf.nn.conv1d(x, kernel, stride=1, padding="VALID"))
        return tf.nn.softmax(tf.matmul(tf.reduce_mean(y, axis=1), dense))

    return _convert(tf, model, tf.TensorSpec(list(shape), tf.float32, name="features"), int8=int8)


def frontend_tflite(shape=(None, None)) -> bytes:
    """An audio front-end: frames of the waveform → dense features → mean → 3 scores; input "audio" of `shape`."""
    tf = _tf()
    rng = np.random.default_rng(3)
    project = tf.constant(rng.standard_normal((FRAME, BINS)).astype(np.float32) / FRAME)
    head = tf.constant(rng.standard_normal((BINS, 3)).astype(np.float32))

    def model(x):
        frames = tf.signal.frame(x, FRAME, HOP)
        features = tf.nn.relu(tf.matmul(frames, project))
        return tf.nn.softmax(tf.matmul(tf.reduce_mean(features, axis=1), head))

    return _convert(tf, model, tf.TensorSpec(list(shape), tf.float32, name="audio"))
