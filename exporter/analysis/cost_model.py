"""Latency estimate from a graph's MACs and a profile's cost model, at the profile's thread count.

    latency = Σ_op MACs_op / throughput(compute type of op) / speed-up(threads)  +  ops × per-op overhead
    speed-up(threads) = 1 + (threads − 1) × thread_efficiency

Ops whose activations are int8/uint8, or whose weights are int8 (hybrid,
dynamic-range kernels), run at the profile's int8 rate; ops with int16
activations (int16x8) at its int16 rate (the int8 rate when it has none); the
rest at its float rate. The profile's rates are single-thread rates. With several threads only the
MAC-bound part is divided: LiteRT runs the ops one after another and splits each
op's work over its thread pool, so the fixed per-op cost (dispatch, and the pool's
hand-off) is not divided. `thread_efficiency` (a profile's `cost_model` field) is
the share of a whole extra core each added thread brings; its default, 0.65, is an
assumption taken from XNNPACK's published MobileNet v2 figures on a Pixel 2
(4 big cores): 53 ms single-threaded, 18 ms on 4 threads, a 2.94x speed-up, i.e.
(2.94 − 1) / 3 ≈ 0.65 (github.com/google/XNNPACK README, "Performance: Mobile
phones", benchmarked 2020-03-27). It is an estimate: a device run (`edgex hil run`)
measures the real one, and `edgex profiles calibrate` refits the rates.

Example:
    >>> from exporter.profile import load_profile
    >>> graph = Graph.from_bytes(tiny_tflite)
    >>> cost = load_profile("android-arm64-midrange").cost_model
    >>> round(estimate_latency_ms(graph, cost), 4)     # 2,096 MACs at 10 GMAC/s + 6 ops x 5 us
    0.0302
    >>> round(estimate_latency_ms(graph, cost, threads=4), 5)     # MAC time / 2.95; the 30 us of op overhead stays
    0.03007
    >>> thread_phrase(cost, 4)
    '4 threads (MAC time / 2.95: speed-up 1 + 3 x 0.65 thread efficiency; per-op overhead not divided)'
    >>> estimate_ram_bytes(graph, cost)               # 208 B activations + 272 B weights + 4 MiB runtime
    4194784
"""
from __future__ import annotations

from exporter.analysis.graph import Graph

INT8_TYPES = {"int8", "uint8", "hybrid"}


def rate_class(compute_dtype: str) -> str:
    """The cost model's rate an op of `compute_dtype` runs at: "int8", "int16" or "float"."""
    return "int16" if compute_dtype == "int16" else "int8" if compute_dtype in INT8_TYPES else "float"


def speedup(cost, threads: int = 1) -> float:
    """How much faster the MAC-bound work runs on `threads` threads: 1 + (threads - 1) x `thread_efficiency`."""
    return 1.0 + (max(int(threads), 1) - 1) * cost.thread_efficiency


def thread_phrase(cost, threads: int = 1) -> str:
    """The thread count of an estimate as its figure says it: "1 thread", or "4 threads (MAC time / 2.95: ...)"."""
    if threads <= 1:
        return "1 thread"
    return (f"{threads} threads (MAC time / {speedup(cost, threads):.2f}: speed-up 1 + {threads - 1} x "
            f"{cost.thread_efficiency:g} thread efficiency; per-op overhead not divided)")


def one_core_phrase(runtime: str, threads: int = 1) -> str:
    """For an estimate whose CPU work runs on one core (TFLM): says so, and that a profile's `threads` > 1 is unused."""
    return f"{runtime} runs on one core" + (f": the profile's threads ({threads}) do not apply" if threads > 1 else "")


def mac_seconds(ops, cost) -> float:
    """Seconds the MACs of `ops` take on one thread at the profile's int8, int16 or float rate."""
    return sum(op.macs / cost.macs_per_second(rate_class(op.compute_dtype)) for op in ops)


def estimate_latency_ms(graph: Graph, cost, threads: int = 1) -> float:
    """Estimate milliseconds per inference.

    Args:
        graph: the parsed TFLite graph.
        cost: a `profile.CostModel` (its MAC rates, per-op overhead and thread efficiency).
        threads: threads the runtime runs the model on (default 1); they divide the MAC time only.

    Returns:
        The estimated latency in milliseconds.
    """
    seconds = mac_seconds(graph.ops, cost) / speedup(cost, threads)
    seconds += len(graph.ops) * cost.per_op_overhead_us * 1e-6
    return seconds * 1e3


def estimate_ram_bytes(graph: Graph, cost) -> int:
    """Estimate peak runtime memory: activations (liveness) + weights + runtime overhead."""
    return int(graph.peak_activation_bytes + graph.weight_bytes + cost.runtime_ram_bytes)
