"""Running a recipe's stages and measuring what each one bought.

After the original model and after every stage, the model is converted with
the export's conversion mode and measured: parameters, non-zero weights,
unique values, per-layer sparsity (Keras and .tflite), Keras and .tflite
accuracy, stored and downloaded bytes (`model_size`: the .tflite; `gzip_size`: gzip -9 of it),
estimated device latency and host latency. The last record also gets `weight_values`: every
kernel's unique values before conversion (Keras) and after it (.tflite), counted per tensor and
per channel as it is quantized (exporter/analysis/unique_values.py).

Example:
    >>> from exporter.stages.convert import ConvertConfig
    >>> from exporter.stages.prune import PruneStage
    >>> stages = [PruneStage({"sparsity": 0.8})]
    >>> final_model, tflite, records = run_stages(model, stages, ctx, ConvertConfig(mode="int8"), demo.calib.x)
    >>> [r["stage"] for r in records], ctx.previous
    (['original', 'prune'], ['prune'])
    >>> records[1]["gzip_size"] < records[0]["gzip_size"] / 2       # 80 % zeros compress well
    True
"""
from __future__ import annotations

import time

import numpy as np

from exporter.analysis.cost_model import estimate_latency_ms
from exporter.analysis.graph import Graph
from exporter.analysis.unique_values import weight_value_rows
from exporter.analysis.weights import keras_totals, keras_weight_stats, tflite_weight_stats
from exporter.config_text import config_inline
from exporter.litert import LiteRTRunner, thread_count, threads_detail
from exporter.measure import gzip_size
from exporter.progress import status
from exporter.stages.base import Family
from exporter.stages.convert import convert
from exporter.stages.training import accuracy


def _tflite_accuracy(runner: LiteRTRunner, eval_ds, output: int = 0) -> float | None:
    """Top-1 accuracy in % of the .tflite on the labelled eval set (of output `output`), or None without labels."""
    if eval_ds is None or eval_ds.y is None:
        return None
    preds = runner.predict(eval_ds.x, "evaluating stage .tflite", output=output)
    return float((preds.argmax(axis=1) == eval_ds.y).mean() * 100)


def measure_stage(name: str, model, tflite: bytes, ctx, *, result=None, config: dict | None = None,
                  seconds: float = 0.0) -> dict:
    """Measure one stage's model and its conversion; every figure is measured except `est_latency_ms`.

    Args:
        name: "original" or the stage's name.
        model: the stage's output model.
        tflite: its conversion.
        ctx: the StageContext (eval data, profile).
        result: the StageResult (skipped layers, notes, metrics), None for the original.
        config: the stage's config as JSON-ready values.
        seconds: how long the stage took.

    Returns:
        The record the report shows for this stage.
    """
    from targets.base import get_target

    graph = Graph.from_bytes(tflite)
    threads, est_threads = ctx.profile.threads, get_target(ctx.profile.target).latency_threads(ctx.profile)
    runner = LiteRTRunner(tflite, threads=threads, names=ctx.io)      # ctx.io: the original's names (io_names.py)
    host = runner.latency_ms(runs=30, warmup=5)
    label = ctx.io.label if ctx.io is not None else 0
    record = {
        "stage": name,
        "config": config or {},
        **keras_totals(model),
        "keras_accuracy": accuracy(model, ctx.eval, label),
        "tflite_accuracy": _tflite_accuracy(runner, ctx.eval, label),
        "model_size": len(tflite),
        "gzip_size": gzip_size(tflite),
        "est_latency_ms": estimate_latency_ms(graph, ctx.profile.cost_model, est_threads),
        "host_latency_ms": host["p50"],
        "seconds": round(seconds, 2),
        "layers": keras_weight_stats(model),
        "tflite_weights": tflite_weight_stats(tflite),
        "skipped": [] if result is None else result.skipped,
        "notes": [] if result is None else result.notes,
        "metrics": {} if result is None else result.metrics,
        "threads": {"est_latency_ms": est_threads, "host_latency_ms": threads},
        "sources": {"est_latency_ms": f"estimated: cost model of {ctx.profile.name}, {thread_count(est_threads)}",
                    "host_latency_ms": f"measured: LiteRT on this machine{runner.kernels}, {threads_detail(threads)}",
                    "other figures": f"measured on this machine (TensorFlow and LiteRT{runner.kernels})"},
    }
    if runner.kernels_note:
        record["sources"]["kernels"] = runner.kernels_note
    return record


def run_stages(model, stages: list, ctx, convert_config, calib_x: np.ndarray | None):
    """Apply `stages` in order, measuring the original and each stage's output.

    Args:
        model: the loaded tf_keras model (left untouched).
        stages: Stage instances (already checked against the profile).
        ctx: the StageContext; `ctx.previous` grows as stages run.
        convert_config: how every stage's model is converted.
        calib_x: calibration samples for int8.

    Returns:
        (final model, final .tflite bytes, per-stage records).

    Raises:
        ConfigError: before any work, a stage whose layer selection (or `--skip-layer`) names
            layers or classes the model lacks (checked up to the first distill stage, which
            changes the model); later, what the stages raise.
    """
    for stage in stages:
        if stage.family is Family.DISTILL:
            break
        stage.check_model(model, ctx)
    records = [measure_stage("original", model, convert(model, convert_config, calib=calib_x), ctx)]
    current = model
    tflite = None
    for stage in stages:
        status(f"stage {stage.name}: {config_inline(stage.config.model_dump(mode='json'))}")
        start = time.perf_counter()
        result = stage.apply(current, ctx)
        elapsed = time.perf_counter() - start
        ctx.previous.append(stage.name)
        current = result.model
        status(f"stage {stage.name}: converting to TFLite ({convert_config.mode}) and measuring")
        tflite = convert(current, convert_config, calib=calib_x)
        records.append(measure_stage(stage.name, current, tflite, ctx, result=result, seconds=elapsed,
                                     config=stage.config.model_dump(mode="json")))
    if tflite is not None:
        records[-1]["weight_values"] = weight_value_rows(current, tflite, clustered_layers(records))
    return current, tflite, records


def clustered_layers(records: list[dict]) -> dict[str, str]:
    """Layer name -> "per channel" or "per tensor", for the layers the cluster stages clustered (the last wins)."""
    out = {}
    for r in records:
        metrics = r.get("metrics") or {}
        for key, mode in (("per_tensor_layers", "per tensor"), ("per_channel_layers", "per channel")):
            out.update(dict.fromkeys(metrics.get(key, ()), mode))
    return out
