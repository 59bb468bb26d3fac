"""The figures a device run measured, named like the export's so that the same checks decide.

Each figure says what it is measured on (transport, device id, and for a phone its model, ABI
and Android version from `getprop`, and the runtime that ran), and every latency says its thread
count and delegate. Memory is like with like: the model's own cost (exporter/hil/result.py
`MEMORY_KINDS`: the agent's resident memory after loading and invoking the model minus before
loading it, or benchmark_model's peak footprint growth from its start), the kind named in the
figure's note, compared with the export's RAM estimate (weights + activations + runtime heap).
A microcontroller's arena plus the profile's runtime RAM stays `mixed`; only an agent that could
not tell its own memory apart falls back to the whole process's peak RSS, saying so.

Example:
    >>> from exporter.hil.result import AgentResult
    >>> result = AgentResult(protocol=1, ok=True, runtime="LiteRT benchmark_model", runtime_version="sha256 0",
    ...                      model_sha256="0" * 64, latency_ms={"p50": 1.5, "mean": 1.6, "runs": 50},
    ...                      threads=4, delegate="xnnpack", model_memory_bytes=2 << 20, memory_kind="footprint_delta")
    >>> figure = latency_figure(result, "adb device S", threads=4)
    >>> figure.value, figure.note
    (1.5, 'p50 of 50 invokes, 4 threads, delegate xnnpack; mean 1.600 ms')
    >>> ram_figure(result, {}, "adb device S").source
    'measured'
"""
from __future__ import annotations

from pathlib import Path

from exporter.checks import MEASURED, MIXED, Measurement
from exporter.hil.benchmark_log import RUNTIME as BENCHMARK
from exporter.hil.result import MEMORY_KINDS, AgentResult


def device_on(who: dict, result: AgentResult) -> str:
    """What ran the figures: "adb device S (Pixel 7, arm64-v8a, Android 14; LiteRT benchmark_model sha256 …)"."""
    phone = ", ".join(str(who[k]) for k in ("model", "abi") if who.get(k))
    if who.get("android"):
        phone += f", Android {who['android']}" + (f" (SDK {who['sdk']})" if who.get("sdk") else "")
    runtime = f"{result.runtime} {result.runtime_version}".strip()
    return f"{who.get('transport')} device {who.get('id')} ({phone + '; ' if phone else ''}{runtime})"


def latency_figure(result: AgentResult, on: str, threads: int) -> Measurement:
    """p50 of the timed invokes, with the thread count and delegate it ran with."""
    lat = result.latency_ms
    ran = result.threads or threads
    spread = "; ".join(f"{name} {value:.3f} ms" for name, value in (("mean", lat.mean), ("p90", lat.p90),
                                                                     ("p95", lat.p95)) if value is not None)
    delegate = f", delegate {result.delegate}" if result.delegate else ""
    return Measurement("latency", lat.p50, "ms", MEASURED, on,
                       f"p50 of {lat.runs} invokes, {ran} thread{'s' if ran != 1 else ''}{delegate}; {spread}")


def ram_figure(result: AgentResult, profile: dict, on: str) -> Measurement | None:
    """The device's memory figure for the `ram` limit, like with like with the export's estimate."""
    if result.arena_bytes is not None:
        overhead = int(profile["cost_model"].get("runtime_ram_bytes", 0))
        return Measurement("ram", result.arena_bytes + overhead, "bytes", MIXED, f"{on} + profile runtime",
                           f"arena {result.arena_bytes:,} B (measured on the device) + runtime {overhead:,} B "
                           "(profile estimate)")
    peak = "" if result.peak_rss_bytes is None else f"; the whole process peaked at {result.peak_rss_bytes:,} B RSS"
    if result.model_memory_bytes is not None and result.memory_kind in MEMORY_KINDS:
        return Measurement("ram", result.model_memory_bytes, "bytes", MEASURED, on,
                           f"{MEMORY_KINDS[result.memory_kind]}{peak}")
    if result.peak_rss_bytes is not None:
        return Measurement("ram", result.peak_rss_bytes, "bytes", MEASURED, on,
                           "peak RSS of the agent process (includes the Python interpreter; the agent could not "
                           "measure the model's own memory, so this is not like with like with the estimate)")
    return None


def _original_accuracy(bundle: Path, count: int) -> float | None:
    """The original model's top-1 % on the bundle's first `count` eval samples (stored at export)."""
    import numpy as np

    path = bundle / "agent" / "eval_samples.npz"
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as data:
        if "ref" not in data.files:
            return None
        return float((data["ref"][:count] == data["y"][:count]).mean() * 100)


def device_figures(result: AgentResult, manifest: dict, on: str, bundle: Path, threads: int) -> dict[str, Measurement]:
    """Every figure of a device run, keyed like the export's (`latency`, `ram`, `model_size`, `accuracy_drop`,
    and `init_time` when the runtime reported it)."""
    out = {}
    if result.latency_ms is not None:
        out["latency"] = latency_figure(result, on, threads)
    if result.init_ms is not None:
        out["init_time"] = Measurement("init_time", result.init_ms, "ms", MEASURED, on,
                                       "loading the model, applying the delegate and allocating tensors")
    ram = ram_figure(result, manifest["profile"], on)
    if ram is not None:
        out["ram"] = ram
    model_bytes = manifest["files"]["model.tflite"]["bytes"]
    out["model_size"] = Measurement("model_size", model_bytes, "bytes", MEASURED, on, "pushed and hash-checked")
    if result.accuracy is not None and result.eval_samples:
        original = _original_accuracy(bundle, result.eval_samples)
        if original is not None:
            out["accuracy_drop"] = Measurement(
                "accuracy_drop", max(0.0, original - result.accuracy), "points", MEASURED, on,
                f"device {result.accuracy:.2f} % vs original {original:.2f} % on the same {result.eval_samples} samples")
    return out


def run_notes(result: AgentResult, plan) -> list[str]:
    """What the run record should say when the device did not run as the plan asked."""
    from exporter.option_names import option

    notes = []
    if result.xnnpack_refusal:
        notes.append(f"the profile asks for delegate {plan.delegate}; XNNPACK refused the model on the device, so "
                     f"{result.runtime} ran it on its builtin kernels (as edgex measured it on the host): "
                     f"{result.xnnpack_refusal}")
    elif result.delegate and plan.delegate and result.delegate != plan.delegate:
        why = "" if result.runtime == BENCHMARK else (
            f" (the Python agent runs LiteRT's CPU paths only: on an adb device, {option('benchmark_binary')} "
            f"measures with {plan.delegate})")
        notes.append(f"the profile asks for delegate {plan.delegate}; {result.runtime} ran {result.delegate}{why}")
    if result.threads and plan.threads and result.threads != plan.threads:
        notes.append(f"asked for {plan.threads} threads; {result.runtime} reports {result.threads}")
    return notes
