"""The equivalence proof of a bridged model, made at every export: Keras 3 and tf_keras on the same samples.

Both models run on up to 256 samples (the evaluation data, else the calibration data; with neither,
8 seeded random inputs in the model's input range). `bridge_max_abs_error` is the largest
|Keras 3 − tf_keras| over the outputs; above `LIMIT` the export stops (exit 4), naming the first
layer, in topological order, whose outputs differ on the sample that differs most.

Example:
    >>> inputs_range([{"class_name": "InputLayer"}, {"class_name": "Rescaling", "config": {"scale": 1 / 255}}])
    (0.0, 255.0, 'uniform in [0, 255) (the model starts with a Rescaling)')
    >>> inputs_range([{"class_name": "InputLayer"}, {"class_name": "Conv2D", "config": {}}])[:2]
    (0.0, 1.0)
"""
from __future__ import annotations

import hashlib

import numpy as np

from exporter.checks import MEASURED, Measurement
from exporter.errors import ConversionError

__all__ = ["FIGURE", "LIMIT", "MAX_SAMPLES", "inputs_range", "prove"]

FIGURE = "bridge_max_abs_error"
LIMIT = 1e-4
MAX_SAMPLES = 256
RANDOM_SAMPLES = 8
_BATCH = 64


def inputs_range(layers: list) -> tuple[float, float, str]:
    """(low, high, description) of random inputs for a model whose tf_keras config layers are `layers`."""
    first = layers[1] if len(layers) > 1 else {}
    scale = first.get("config", {}).get("scale") if first.get("class_name") == "Rescaling" else None
    if isinstance(scale, (int, float)) and 0 < scale < 1:
        return 0.0, 255.0, "uniform in [0, 255) (the model starts with a Rescaling)"
    return 0.0, 1.0, "uniform in [0, 1)"


def prove(bridge, model, samples, role: str, origin: str) -> Measurement:
    """Run the Keras 3 model and its tf_keras translation on the same inputs and compare the outputs.

    Args:
        bridge: the Bridge (exporter/keras3/bridge.py): its Keras 3 model and translation.
        model: the tf_keras model.
        samples: input samples (N, ...) or None (random inputs are made).
        role: what the samples are ("eval", "calibration").
        origin: the model file, for messages.

    Returns:
        The `bridge_max_abs_error` Measurement (cached per sample set in `bridge.proofs`).

    Raises:
        ConversionError: (exit 4) the outputs differ by more than LIMIT; names the first layer that differs.
    """
    x, on, note = _inputs(bridge, model, samples, role)
    key = hashlib.sha1(x.tobytes() + str(x.shape).encode()).hexdigest()
    if key in bridge.proofs:
        return bridge.proofs[key]
    ref, got = _predict(bridge.source, x), _predict(model, x)
    both_nan = np.isnan(ref) & np.isnan(got)
    diff = np.where(both_nan, 0.0, np.abs(ref.astype(np.float64) - got)).reshape(len(x), -1).max(axis=1)
    error = float(diff.max())
    if not error <= LIMIT:                               # NaN on one side fails too
        raise ConversionError(_difference_message(bridge, model, x[[int(np.nan_to_num(diff, nan=np.inf).argmax())]],
                                                  error, on, origin))
    figure = Measurement(FIGURE, error, "", MEASURED, f"TensorFlow (Keras 3 and tf_keras) on this host, {on}",
                         f"largest absolute difference between the outputs of the Keras 3 model and its tf_keras "
                         f"translation; above {LIMIT:g} the export stops{note}")
    bridge.proofs[key] = figure
    return figure


def _inputs(bridge, model, samples, role: str):
    if samples is not None and len(samples):
        x = np.asarray(samples[:MAX_SAMPLES], dtype=np.float32)
        return x, f"{len(x)} {role} samples", ""
    low, high, how = inputs_range(bridge.translation.config["layers"])
    shape = tuple(model.inputs[0].shape[1:])
    x = np.random.default_rng(0).uniform(low, high, (RANDOM_SAMPLES, *shape)).astype(np.float32)
    return x, f"{RANDOM_SAMPLES} random inputs", f" (no evaluation or calibration data: {RANDOM_SAMPLES} seeded " \
                                                 f"random inputs {how})"


def _predict(model, x: np.ndarray) -> np.ndarray:
    outs = [np.asarray(model(x[i:i + _BATCH], training=False)) for i in range(0, len(x), _BATCH)]
    return np.concatenate(outs).astype(np.float32)


def _difference_message(bridge, model, x, error: float, on: str, origin: str) -> str:
    from exporter.keras3.translate import refusal_hint

    where = _first_difference(bridge, model, x)
    return (f"the tf_keras translation of the Keras 3 model {origin} does not compute what it does: "
            f"max |Keras 3 - tf_keras| over the outputs is {error:.3g} on {on} (limit {LIMIT:g}); {where}. "
            f"The bridge's table is wrong for this model: please report it. {refusal_hint()}")


def _first_difference(bridge, model, x) -> str:
    """The first layer (topological order) whose outputs differ by more than LIMIT relative to their scale."""
    from exporter import tf as tfmod

    ops = {op.name: op for op in getattr(bridge.source, "operations", bridge.source.layers)}
    names = [n for n, cls in bridge.translation.classes.items() if cls != "InputLayer" and n in ops
             and len(getattr(ops[n], "_inbound_nodes", [])) == 1 and _has_layer(model, n)]
    if not names:
        return "no single layer could be compared"
    inputs = bridge.source.inputs
    ref = tfmod.keras3().Model(inputs[0] if len(inputs) == 1 else inputs, [ops[n].output for n in names])(
        x, training=False)
    got = tfmod.keras().Model(model.inputs, [model.get_layer(n).output for n in names])(x, training=False)
    worst = (0.0, names[-1], 0.0)
    for name, a, b in zip(names, ref, got):
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        if a.shape != b.shape:
            return f"the first layer whose outputs differ is {name!r} ({bridge.translation.classes[name]}): " \
                   f"shape {a.shape} in Keras 3, {b.shape} in tf_keras"
        err = float(np.nan_to_num(np.abs(a - b), nan=np.inf).max()) if a.size else 0.0
        ratio = err / max(1.0, float(np.nan_to_num(np.abs(a)).max()) if a.size else 1.0)
        if ratio > LIMIT:
            return f"the first layer whose outputs differ is {name!r} ({bridge.translation.classes[name]}), by {err:.3g}"
        worst = max(worst, (ratio, name, err))
    return (f"no layer differs by more than {LIMIT:g} of its scale; the largest difference is at {worst[1]!r} "
            f"({bridge.translation.classes[worst[1]]}), {worst[2]:.3g}")


def _has_layer(model, name: str) -> bool:
    try:
        model.get_layer(name)
    except ValueError:
        return False
    return True
