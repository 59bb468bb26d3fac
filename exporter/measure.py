"""Host measurements shared by every target that runs LiteRT: size, accuracy, fidelity, latency.

Example:
    >>> figures = measure_host(tiny_tflite, None, None, latency_runs=20)    # no Keras model, no eval data
    >>> sorted(figures)
    ['gzip_size', 'host_latency_p50', 'host_latency_p90', 'model_size']
    >>> figures["model_size"].value, figures["model_size"].source, figures["model_size"].on
    (3264, 'measured', 'model.tflite file')
    >>> int8 = (bundle / "model.tflite").read_bytes()              # the demo CNN, int8, against its Keras model
    >>> figures = measure_host(int8, model, demo.eval, latency_runs=20)
    >>> sorted(name for name in figures if name.startswith(("accuracy", "fidelity", "top1")))
    ['accuracy', 'accuracy_drop', 'accuracy_original', 'fidelity_cosine', 'fidelity_max_abs_error', 'top1_agreement']
    >>> figures["accuracy_drop"].source, figures["accuracy_drop"].on.endswith("360 eval samples")
    ('measured', True)
"""
from __future__ import annotations

import gzip

import numpy as np

from exporter.checks import ESTIMATED, MEASURED, Measurement
from exporter.data import Dataset
from exporter.litert import LiteRTRunner, host_description


def gzip_size(data: bytes) -> int:
    """Bytes after gzip at level 9, TF-MOT's 'compressed size' convention."""
    return len(gzip.compress(data, compresslevel=9, mtime=0))


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.reshape(len(a), -1).astype(np.float64), b.reshape(len(b), -1).astype(np.float64)
    num = (a * b).sum(axis=1)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return float(np.mean(np.where(den > 0, num / np.maximum(den, 1e-300), 1.0)))


def measure_host(tflite_bytes: bytes, keras_model, eval_ds: Dataset | None, *,
                 latency_runs: int = 100, converted_from=None) -> dict[str, Measurement]:
    """Measure a model with the real LiteRT interpreter on this machine.

    Accuracy is compared with the original model (`accuracy_drop`); agreement and fidelity with
    the Keras model the .tflite was converted from (after compression stages, the last stage's
    model), so they say whether conversion changed the answers; `top1_agreement_original` then
    gives the agreement with the original as well.

    Args:
        tflite_bytes: the converted model.
        keras_model: the original tf_keras model, or None for a .tflite input.
        eval_ds: evaluation data (labels optional), or None.
        latency_runs: timed invokes after 10 warm-up runs.
        converted_from: the Keras model that was converted, when it is not `keras_model`.

    Returns:
        Measurements keyed by name; `model_size` and `accuracy_drop` feed the checks.
    """
    host = host_description()
    runner = LiteRTRunner(tflite_bytes)
    out = {
        "model_size": Measurement("model_size", len(tflite_bytes), "bytes", MEASURED, "model.tflite file"),
        "gzip_size": Measurement("gzip_size", gzip_size(tflite_bytes), "bytes", MEASURED, "gzip -9 of model.tflite"),
    }
    sample = None if eval_ds is None else eval_ds.x[0]
    lat = runner.latency_ms(sample, runs=latency_runs)
    for key in ("p50", "p90"):
        out[f"host_latency_{key}"] = Measurement(f"host_latency_{key}", lat[key], "ms", MEASURED, host,
                                                 f"{lat['runs']} invokes after 10 warm-up")
    if eval_ds is None:
        return out
    n = len(eval_ds)
    lite = runner.predict(eval_ds.x, "evaluating .tflite")
    on = f"{host}, {n} eval samples"
    if eval_ds.y is not None:
        acc = float((lite.argmax(axis=1) == eval_ds.y).mean() * 100)
        out["accuracy"] = Measurement("accuracy", acc, "%", MEASURED, on, "top-1 of the .tflite model")
    if keras_model is None:
        return out
    out.update(_against_keras(lite, keras_model, converted_from, eval_ds, on, out.get("accuracy")))
    return out


def _against_keras(lite, keras_model, converted_from, eval_ds: Dataset, on: str, accuracy) -> dict:
    """Fidelity and agreement with the converted Keras model; accuracy and agreement against the original."""
    out = {}
    ref = np.asarray(keras_model.predict(eval_ds.x, verbose=0, batch_size=256))
    conv = ref if converted_from is None else np.asarray(converted_from.predict(eval_ds.x, verbose=0, batch_size=256))
    which = "Keras" if converted_from is None else "the last stage's Keras model (what was converted)"
    out["fidelity_cosine"] = Measurement("fidelity_cosine", _cosine(lite, conv), "", MEASURED, on,
                                         f"mean cosine similarity of .tflite vs {which} outputs")
    out["fidelity_max_abs_error"] = Measurement("fidelity_max_abs_error", float(np.abs(lite - conv).max()), "",
                                                MEASURED, on, f"largest |tflite - keras| output difference ({which})")
    if lite.ndim != 2:
        return out
    agree = float((lite.argmax(axis=1) == ref.argmax(axis=1)).mean() * 100)
    if converted_from is not None:
        out["top1_agreement_original"] = Measurement("top1_agreement_original", agree, "%", MEASURED, on,
                                                     "same top-1 class as the original Keras model")
    agree_conv = float((lite.argmax(axis=1) == conv.argmax(axis=1)).mean() * 100)
    out["top1_agreement"] = Measurement("top1_agreement", agree_conv, "%", MEASURED, on, f"same top-1 class as {which}")
    if eval_ds.y is not None:
        ref_acc = float((ref.argmax(axis=1) == eval_ds.y).mean() * 100)
        out["accuracy_original"] = Measurement("accuracy_original", ref_acc, "%", MEASURED,
                                               f"TensorFlow (Keras) on host, {len(eval_ds)} eval samples",
                                               "top-1 of the original Keras model")
        out["accuracy_drop"] = Measurement("accuracy_drop", max(0.0, ref_acc - accuracy.value), "points",
                                           MEASURED, on, "original top-1 minus .tflite top-1")
    else:
        out["accuracy_drop"] = Measurement("accuracy_drop", 100.0 - agree, "points", ESTIMATED, on,
                                           "upper bound: no labels, so 100 - top-1 agreement with Keras")
    return out
