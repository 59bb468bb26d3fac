"""Targets whose devices run LiteRT / tflite-runtime on an application CPU (phones, Linux boards).

Measured on this machine with the real LiteRT interpreter: size, accuracy, fidelity and
host latency. Estimated for the device: latency from the profile's cost model, and RAM
from tensor liveness plus weights plus the runtime's own memory. `edgex hil run`
replaces the estimates with figures measured on the device.
"""
from __future__ import annotations

from targets.base import Artifacts, Measured, Target


class CpuTarget(Target):
    """A device with an application CPU running LiteRT (subclasses name the device kind)."""

    runtime = "LiteRT (ai-edge-litert) / tflite-runtime"

    def measure(self, artifacts: Artifacts) -> Measured:
        from exporter.analysis.cost_model import estimate_latency_ms, estimate_ram_bytes
        from exporter.checks import ESTIMATED, Measurement
        from exporter.measure import measure_host

        profile, graph = artifacts.profile, artifacts.graph
        figures = measure_host(artifacts.tflite, artifacts.keras_model, artifacts.eval_ds)
        figures["latency"] = Measurement(
            "latency", estimate_latency_ms(graph, profile.cost_model), "ms", ESTIMATED,
            f"cost model of {profile.name}", f"{graph.total_macs:,} MACs over {len(graph.ops)} ops")
        figures["ram"] = Measurement(
            "ram", estimate_ram_bytes(graph, profile.cost_model), "bytes", ESTIMATED,
            f"tensor liveness of the graph + {profile.name} runtime overhead",
            f"activations {graph.peak_activation_bytes:,} B + weights {graph.weight_bytes:,} B "
            f"+ runtime {int(profile.cost_model.runtime_ram_bytes):,} B")
        return Measured(figures)
