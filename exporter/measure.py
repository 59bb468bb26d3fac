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

A model with several outputs gets fidelity figures per output, named after it (`fidelity_cosine[cls]`,
`fidelity_max_abs_error[cls]`); `fidelity_cosine` and `fidelity_max_abs_error` are then the worst over
the outputs (the lowest cosine, the largest error), the figures the `fidelity` check reads. Accuracy and
top-1 agreement are taken on the label output (exporter/io_names.py).
"""
from __future__ import annotations

import gzip

import numpy as np

from exporter.checks import ESTIMATED, MEASURED, Measurement
from exporter.data import Dataset
from exporter.litert import LiteRTRunner, host_description, threads_detail


def gzip_size(data: bytes) -> int:
    """Bytes after gzip at level 9, TF-MOT's 'compressed size' convention."""
    return len(gzip.compress(data, compresslevel=9, mtime=0))


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.reshape(len(a), -1).astype(np.float64), b.reshape(len(b), -1).astype(np.float64)
    num = (a * b).sum(axis=1)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return float(np.mean(np.where(den > 0, num / np.maximum(den, 1e-300), 1.0)))


def measure_host(tflite_bytes: bytes, keras_model, eval_ds: Dataset | None, *,
                 latency_runs: int = 100, converted_from=None, input_shapes: dict | None = None,
                 io=None, threads: int = 1) -> dict[str, Measurement]:
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
        input_shapes: input name -> shape for a model with dynamic input dims (LiteRT resizes to it).
        io: the model's IOSignature (names in the Keras order, the label output); None: the Keras
            model's, or for a .tflite its own tensor order with the first output for labels.
        threads: LiteRT's `num_threads` on this host (the profile's `threads`; default 1), named in every
            host figure's "on" and the latency figures' note with the cores available.

    Returns:
        Measurements keyed by name; `model_size` and `accuracy_drop` feed the checks. On a model XNNPACK
        refuses (run on the builtin kernels: `LiteRTRunner`), "on" says so and the notes give the reason.

    Raises:
        ModelFileError: not even LiteRT's builtin kernels can load the model.
    """
    from exporter.io_names import IOSignature

    if io is None:
        io = IOSignature.from_keras(keras_model) if keras_model is not None else IOSignature.from_tflite(tflite_bytes)
    runner = LiteRTRunner(tflite_bytes, threads=threads, input_shapes=input_shapes, names=io)
    host = host_description(threads) + runner.kernels          # ", builtin kernels (...)" when XNNPACK refused it
    why = f"; {runner.kernels_note}" if runner.kernels_note else ""
    out = {
        "model_size": Measurement("model_size", len(tflite_bytes), "bytes", MEASURED, "model.tflite file"),
        "gzip_size": Measurement("gzip_size", gzip_size(tflite_bytes), "bytes", MEASURED, "gzip -9 of model.tflite"),
    }
    sample = None if eval_ds is None else tuple(a[0] for a in eval_ds.inputs)
    lat = runner.latency_ms(sample, runs=latency_runs)
    for key in ("p50", "p90"):
        out[f"host_latency_{key}"] = Measurement(f"host_latency_{key}", lat[key], "ms", MEASURED, host,
                                                 f"{lat['runs']} invokes after 10 warm-up; {threads_detail(threads)}{why}")
    if eval_ds is None:
        return out
    n = len(eval_ds)
    lites = runner.predict_all(eval_ds.x, "evaluating .tflite")
    lite = lites[io.label]
    on = f"{host}, {n} eval samples"
    label = f" (output {io.label_name!r})" if len(io.outputs) > 1 else ""
    if eval_ds.y is not None:
        acc = float((lite.argmax(axis=1) == eval_ds.y).mean() * 100)
        out["accuracy"] = Measurement("accuracy", acc, "%", MEASURED, on,
                                      f"top-1 of the .tflite model{label}{why}")
    if keras_model is None:
        return out
    out.update(_against_keras(lites, keras_model, converted_from, eval_ds, on, out.get("accuracy"), io))
    return out


def _predict(model, eval_ds: Dataset) -> list[np.ndarray]:
    """Every output of a Keras model on the eval samples, in its output order."""
    result = model.predict(eval_ds.keras_x, verbose=0, batch_size=256)
    return [np.asarray(r) for r in result] if isinstance(result, (list, tuple)) else [np.asarray(result)]


def _fidelity(lites: list, convs: list, names: tuple, on: str, which: str) -> dict:
    """`fidelity_cosine` and `fidelity_max_abs_error` (the worst over the outputs), and per output when several."""
    cosines = [_cosine(lite, conv) for lite, conv in zip(lites, convs)]
    errors = [float(np.abs(lite - conv).max()) for lite, conv in zip(lites, convs)]
    worst = f"; the worst of the outputs {', '.join(map(repr, names))}" if len(names) > 1 else ""
    out = {"fidelity_cosine": Measurement("fidelity_cosine", min(cosines), "", MEASURED, on,
                                          f"mean cosine similarity of .tflite vs {which} outputs{worst}"),
           "fidelity_max_abs_error": Measurement("fidelity_max_abs_error", max(errors), "", MEASURED, on,
                                                 f"largest |tflite - keras| output difference ({which}){worst}")}
    for name, cosine, error in (zip(names, cosines, errors) if len(names) > 1 else ()):
        out[f"fidelity_cosine[{name}]"] = Measurement(f"fidelity_cosine[{name}]", cosine, "", MEASURED, on,
                                                      f"mean cosine similarity of output {name!r} vs {which}")
        out[f"fidelity_max_abs_error[{name}]"] = Measurement(
            f"fidelity_max_abs_error[{name}]", error, "", MEASURED, on,
            f"largest |tflite - keras| difference of output {name!r} ({which})")
    return out


def _against_keras(lites, keras_model, converted_from, eval_ds: Dataset, on: str, accuracy, io) -> dict:
    """Fidelity and agreement with the converted Keras model; accuracy and agreement against the original."""
    refs = _predict(keras_model, eval_ds)
    convs = refs if converted_from is None else _predict(converted_from, eval_ds)
    which = "Keras" if converted_from is None else "the last stage's Keras model (what was converted)"
    out = _fidelity(lites, convs, io.output_names, on, which)
    lite, ref, conv = lites[io.label], refs[io.label], convs[io.label]
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
