"""The figures of a sparse export, measured in the same run as the model's own, and the report's section.

`sparse_figures` runs on a CPU target after `measure_host` measured the bundled (sparse) model. It measures the
model converted without sparse encoding the same way: LiteRT on this machine, the profile's `threads`, the
same sample and 100 invokes after 10 warm-up (`LiteRTRunner.latency_ms`, as for `host_latency_p50`), and
compares both models' outputs on the eval samples (one sample of zeros without eval data):

| figure | what |
|---|---|
| `model_size_dense` | bytes of model.tflite converted without sparse encoding (same TFLite metadata) |
| `host_latency_p50_dense` | its host latency, measured like `host_latency_p50` right after it |
| `host_latency_ratio_sparse` | `host_latency_p50` / `host_latency_p50_dense` (below 1: the sparse model ran faster) |
| `sparse_tensors` | tensors stored sparse, counted in the flatbuffer (`tensor.sparsity`) |
| `sparse_max_abs_error` | the largest \\|sparse − dense\\| output difference on LiteRT (float rounding only) |

`report_lines` gives the lines of the report's "Sparse encoding" section from the record (exporter/sparse/step.py)
and the figures, for report.md (a Markdown table function) and report.html.
"""
from __future__ import annotations

import numpy as np

from exporter.checks import MEASURED, Measurement
from exporter.units import format_value


def _runners(artifacts):
    """LiteRT runners of the sparse (bundled) and the dense model, with the host's threads and the model's names."""
    from exporter.io_names import IOSignature
    from exporter.litert import LiteRTRunner

    io = artifacts.io if artifacts.io is not None else IOSignature.from_keras(artifacts.keras_model)
    threads = artifacts.profile.threads

    def runner(model: bytes):
        """A loaded LiteRT interpreter of `model`, set up as measure_host sets up its own."""
        return LiteRTRunner(model, threads=threads, input_shapes=artifacts.input_shapes, names=io)

    return runner(artifacts.tflite), runner(artifacts.sparse.dense_tflite)


def _max_abs_error(sparse, dense, eval_ds) -> tuple[float, str]:
    """The largest output difference of the two models, and on what samples."""
    if eval_ds is not None:
        x, on = eval_ds.x, f"{len(eval_ds)} eval samples"
    else:
        x, on = tuple(np.zeros((1, *d["shape"][1:]), np.float32) for d in sparse.inputs), "one sample of zeros"
    a = sparse.predict_all(x, "running the sparse model")
    b = dense.predict_all(x, "running the dense model")
    return max(float(np.abs(p - q).max()) for p, q in zip(a, b)), on


def sparse_figures(artifacts, figures: dict) -> dict[str, Measurement]:
    """The figures of the table in the module docstring; {} when the bundled model is not the sparse one.

    Args:
        artifacts: what the target measures; `artifacts.sparse` is the step's record (None: no sparse step).
        figures: the figures measured so far (`host_latency_p50` of the bundled model).

    Returns:
        Measurements keyed by name.
    """
    from exporter.litert import host_description, threads_detail
    from exporter.sparse.tensors import summary

    record = artifacts.sparse
    if record is None or not record.applied or record.dense_tflite is None:
        return {}
    threads = artifacts.profile.threads
    sparse, dense = _runners(artifacts)
    host = host_description(threads) + dense.kernels          # ", builtin kernels (...)" when XNNPACK refused it
    sample = None if artifacts.eval_ds is None else tuple(a[0] for a in artifacts.eval_ds.inputs)
    lat = dense.latency_ms(sample)
    error, on = _max_abs_error(sparse, dense, artifacts.eval_ds)
    size, dense_size = len(artifacts.tflite), len(record.dense_tflite)
    ratio = figures["host_latency_p50"].value / lat["p50"] if lat["p50"] > 0 else None
    how = f"{lat['runs']} invokes after 10 warm-up, as host_latency_p50; {threads_detail(threads)}"
    notes = {"sparse": sparse.kernels_note, "dense": dense.kernels_note}       # XNNPACK refused one: its reason
    kernels = "".join(f"; the {which} model: {note}" for which, note in notes.items() if note)
    how += kernels
    m = Measurement
    return {
        "model_size_dense": m("model_size_dense", dense_size, "bytes", MEASURED,
                              "model.tflite converted without sparse encoding in this run (same TFLite metadata)",
                              f"the sparse model.tflite is {size / dense_size:.2f}x of it ({size:,} B)"),
        "host_latency_p50_dense": m("host_latency_p50_dense", lat["p50"], "ms", MEASURED, host,
                                    f"the model without sparse encoding; {how}"),
        "host_latency_ratio_sparse": m("host_latency_ratio_sparse", ratio, "x", MEASURED, host,
                                       "host_latency_p50 / host_latency_p50_dense (below 1: the sparse model ran "
                                       f"faster on this host){kernels}"),
        "sparse_tensors": m("sparse_tensors", len(record.tensors), "", MEASURED, "model.tflite flatbuffer "
                            "(tensor.sparsity)", summary(list(record.tensors))),
        "sparse_max_abs_error": m("sparse_max_abs_error", error, "", MEASURED, f"{host}, {on}",
                                  "largest |sparse - dense| output difference of the two .tflite models"),
    }


def report_lines(record: dict | None, measurements: dict, table) -> list:
    """The lines of the report's "Sparse encoding" section, under its heading (none without a record or when off).

    Args:
        record: the report's `sparse_encoding` (SparseEncoding.to_dict()).
        measurements: the report's figures.
        table: makes table lines from (headers, rows), e.g. report.md's Markdown table.

    Returns:
        Lines: text, and the tables `table` made.
    """
    if not record or record["setting"] == "off":
        return []
    lines = [f"- setting: {record['setting']}; {'applied' if record['applied'] else 'not applied'}: {record['reason']}"]
    if not record["applied"]:
        return lines
    size, dense = measurements.get("model_size"), measurements.get("model_size_dense")
    lat, lat_dense = measurements.get("host_latency_p50"), measurements.get("host_latency_p50_dense")
    pretty = lambda m: "n/a" if m is None else format_value(m.value, m.unit)  # noqa: E731
    xnn = record["xnnpack_sparse_inference"]
    lines += [f"- stored (model_size): {pretty(size)} with sparse encoding, {pretty(dense)} without (model_size_dense)",
              f"- host latency p50: {pretty(lat)} with, {pretty(lat_dense)} without (same run, same threads; ratio "
              f"{pretty(measurements.get('host_latency_ratio_sparse'))})",
              f"- tensors: {record['summary']}",
              f"- XNNPACK's sparse inference {'can apply' if xnn['applies'] else 'does not apply'}: "
              f"{xnn['consequence']}", f"- {xnn['basis']}", ""]
    lines += table(["condition", "met", "found"], [[c["condition"], "yes" if c["met"] else "no", c["found"]]
                                                  for c in xnn["conditions"]])
    lines += ["", *table(["tensor", "encoding", "stored values", "values", "expanded at load (DENSIFY)"],
                         [[t["tensor"], t["encoding"], f"{t['stored_values']:,}", f"{t['values']:,}",
                           "yes" if t["densified_at_load"] else "no"] for t in record["tensors"]])]
    return lines
