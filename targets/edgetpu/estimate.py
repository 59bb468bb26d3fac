"""Estimated latency and parameter memory of an Edge TPU model, from its TPU/CPU split.

latency = TPU MACs / the profile's effective TPU rate + tensors crossing the host link
          + parameters streamed past the on-chip cache + invoke overhead + CPU-fallback ops
          (the host's cost model, at the profile's `threads`: LiteRT runs them on the host CPU).
Every figure is an estimate; a compiler log, when there is one, supplies the split and the
on-chip / streamed parameter bytes.

Example:
    >>> from exporter.analysis.graph import Graph
    >>> from exporter.profile import load_profile
    >>> from targets.edgetpu.ops import map_graph
    >>> profile = load_profile("coral-usb")
    >>> settings = profile.section("edgetpu")
    >>> graph = Graph.from_bytes(tiny_tflite)
    >>> mapping = map_graph(graph, settings.runtime_version)
    >>> parts = estimate(split_from_mapping(graph, mapping), settings, profile.cost_model)
    >>> {name: round(ms, 4) for name, ms in parts["latency_ms"].items()}  # doctest: +NORMALIZE_WHITESPACE
    {'tpu_compute': 0.0, 'transfers': 0.0002, 'streamed_parameters': 0.0, 'invoke_overhead': 0.2,
     'cpu_fallback': 0.0, 'total': 0.2002}
    >>> parts["parameters"]                   # 272 bytes of weights fit the 8 MiB on-chip cache
    {'tpu_bytes': 272, 'on_chip_bytes': 272, 'streamed_bytes': 0, 'cache_bytes': 8388608}
"""
from __future__ import annotations

from dataclasses import dataclass

EDGETPU_CUSTOM_OP = "CUSTOM:edgetpu-custom-op"


@dataclass(frozen=True)
class Split:
    """The TPU/CPU split a latency and RAM estimate works from."""

    tpu_ops: int
    cpu_ops: list            # OpInfo of the ops on the CPU
    tpu_macs: int
    param_bytes: int         # constants read by TPU ops
    boundary_bytes: int      # tensors crossing the host link each inference
    host_tensor_bytes: int   # non-constant tensors living in host memory (upper bound, no reuse)
    source: str


def split_from_mapping(graph, mapping) -> Split:
    tpu = {o.index for o in mapping.tpu_ops}
    cpu_ops = [op for op in graph.ops if op.index not in tpu]
    params, produced, consumed, host = set(), set(), set(), set(graph.inputs) | set(graph.outputs)
    for op in graph.ops:
        if op.index in tpu:
            params |= {i for i in op.inputs if i >= 0 and graph.tensors[i].is_constant}
            consumed |= {i for i in op.inputs if i >= 0 and not graph.tensors[i].is_constant}
            produced |= set(op.outputs)
        else:
            host |= {i for i in (*op.inputs, *op.outputs) if i >= 0 and not graph.tensors[i].is_constant}
    crossing = (consumed - produced) | (produced & host)
    return Split(len(tpu), cpu_ops, sum(op.macs for op in graph.ops if op.index in tpu),
                 sum(graph.tensors[i].nbytes for i in params), sum(graph.tensors[i].nbytes for i in crossing),
                 sum(graph.tensors[i].nbytes for i in host), "edgex op table")


def split_from_compiled(graph, compiled_graph, tpu_ops: int, param_bytes: int) -> Split:
    """The split as compiled: the edgetpu-custom-op holds the TPU part, the other ops are the CPU's.

    The custom op carries its parameters inside its own data, so `param_bytes` (the static estimate)
    stands in for them; the compiler's log gives the on-chip and streamed figures.
    """
    cpu_ops = [op for op in compiled_graph.ops if op.name != EDGETPU_CUSTOM_OP]
    custom = [op for op in compiled_graph.ops if op.name == EDGETPU_CUSTOM_OP]
    crossing = {i for op in custom for i in (*op.inputs, *op.outputs)
                if i >= 0 and not compiled_graph.tensors[i].is_constant}
    host = {t.index for t in compiled_graph.tensors if not t.is_constant}
    return Split(tpu_ops, cpu_ops, max(graph.total_macs - sum(op.macs for op in cpu_ops), 0), param_bytes,
                 sum(compiled_graph.tensors[i].nbytes for i in crossing),
                 sum(compiled_graph.tensors[i].nbytes for i in host), "compiled model")


def estimate(split: Split, settings, cost, *, on_chip: int | None = None,
             streamed: int | None = None, threads: int = 1) -> dict:
    """Latency parts (ms) and parameter memory (bytes) of one inference.

    Args:
        split: the TPU/CPU split.
        settings: the profile's Edge TPU section.
        cost: the profile's `CostModel` (CPU-fallback ops).
        on_chip, streamed: the compiler's parameter figures; default: the split's parameters against the cache.
        threads: LiteRT threads on the host for the CPU-fallback ops (the profile's `threads`; default 1): they
            divide those ops' MAC time (exporter/analysis/cost_model.py); the TPU part has no threads.
    """
    from exporter.analysis.cost_model import mac_seconds, speedup

    if on_chip is None or streamed is None:
        on_chip = int(min(split.param_bytes, settings.parameter_cache_bytes))
        streamed = int(max(split.param_bytes - settings.parameter_cache_bytes, 0))
    bandwidth = settings.bandwidth_bytes_per_s
    tpu_ms = split.tpu_macs / (settings.tpu_int8_gmacs * 1e9) * 1e3
    cpu_ms = (mac_seconds(split.cpu_ops, cost) / speedup(cost, threads)
              + len(split.cpu_ops) * cost.per_op_overhead_us * 1e-6) * 1e3
    parts = {
        "tpu_compute": tpu_ms,
        "transfers": split.boundary_bytes / bandwidth * 1e3 if split.tpu_ops else 0.0,
        "streamed_parameters": streamed / bandwidth * 1e3,
        "invoke_overhead": settings.invoke_overhead_us * 1e-3 if split.tpu_ops else 0.0,
        "cpu_fallback": cpu_ms,
    }
    return {"latency_ms": {**parts, "total": sum(parts.values())},
            "parameters": {"tpu_bytes": split.param_bytes, "on_chip_bytes": on_chip, "streamed_bytes": streamed,
                           "cache_bytes": int(settings.parameter_cache_bytes)},
            "boundary_bytes": split.boundary_bytes, "host_tensor_bytes": split.host_tensor_bytes,
            "split_source": split.source, "cpu_threads": threads}


def split_as_compiled(graph, mapping, result) -> Split:
    """The split an estimate works from: the compiled model's if it has an Edge TPU op, else the static mapping's.

    Args:
        graph: the int8 model's graph; mapping: its static `Mapping`.
        result: the compiler's `CompileResult`, or None when it did not run.
    """
    from exporter.analysis.graph import Graph

    split = split_from_mapping(graph, mapping)
    if result is not None:
        compiled_graph = Graph.from_bytes(result.compiled_tflite)
        if any(op.name == EDGETPU_CUSTOM_OP for op in compiled_graph.ops):
            split = split_from_compiled(graph, compiled_graph, result.log.tpu_ops or 0, split.param_bytes)
    return split
