"""Latency estimate from a graph's MACs and a profile's cost model.

    latency = Σ_op  MACs_op / throughput(compute type of op)  +  ops × per-op overhead

Ops whose activations are int8/uint8, or whose weights are int8 (hybrid,
dynamic-range kernels), run at the profile's int8 rate; the rest at its float
rate. It is an estimate: a device run (`edgex hil run`) measures the real one.

Example:
    >>> from exporter.profile import load_profile
    >>> graph = Graph.from_bytes(tiny_tflite)
    >>> cost = load_profile("android-arm64-midrange").cost_model
    >>> round(estimate_latency_ms(graph, cost), 4)     # 2,096 MACs at 10 GMAC/s + 6 ops x 5 us
    0.0302
    >>> estimate_ram_bytes(graph, cost)               # 208 B activations + 272 B weights + 4 MiB runtime
    4194784
"""
from __future__ import annotations

from exporter.analysis.graph import Graph

INT8_TYPES = {"int8", "uint8", "int16", "hybrid"}


def estimate_latency_ms(graph: Graph, cost) -> float:
    """Estimate milliseconds per inference.

    Args:
        graph: the parsed TFLite graph.
        cost: a `profile.CostModel` (its MAC rates and per-op overhead).

    Returns:
        The estimated latency in milliseconds.
    """
    seconds = 0.0
    for op in graph.ops:
        seconds += op.macs / cost.macs_per_second(op.compute_dtype in INT8_TYPES)
    seconds += len(graph.ops) * cost.per_op_overhead_us * 1e-6
    return seconds * 1e3


def estimate_ram_bytes(graph: Graph, cost) -> int:
    """Estimate peak runtime memory: activations (liveness) + weights + runtime overhead."""
    return int(graph.peak_activation_bytes + graph.weight_bytes + cost.runtime_ram_bytes)
