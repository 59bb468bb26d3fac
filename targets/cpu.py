"""Targets whose devices run LiteRT / tflite-runtime on an application CPU (phones, Linux boards).

Measured on this machine with the real LiteRT interpreter: size, accuracy, fidelity and
host latency. Estimated for the device: latency from the profile's cost model. Mixed: RAM,
the weights read from the model + activations estimated from tensor liveness + the
profile's estimate of the runtime's own memory. `edgex hil run`
replaces the estimates with figures measured on the device.
"""
from __future__ import annotations

from targets.base import Artifacts, Measured, Target


class CpuTarget(Target):
    """A device with an application CPU running LiteRT (subclasses name the device kind)."""

    runtime = "LiteRT (ai-edge-litert) / tflite-runtime"

    def measure(self, artifacts: Artifacts) -> Measured:
        from exporter.analysis.cost_model import estimate_latency_ms, estimate_ram_bytes
        from exporter.checks import ESTIMATED, MIXED, Measurement

        profile, graph = artifacts.profile, artifacts.graph
        figures = artifacts.host_figures()
        figures["latency"] = Measurement(
            "latency", estimate_latency_ms(graph, profile.cost_model), "ms", ESTIMATED,
            f"cost model of {profile.name}", f"{graph.total_macs:,} MACs over {len(graph.ops)} ops")
        figures["ram"] = Measurement(
            "ram", estimate_ram_bytes(graph, profile.cost_model), "bytes", MIXED,
            f"weights of model.tflite + tensor liveness of the graph + {profile.name} runtime",
            f"weights {graph.weight_bytes:,} B (read from model.tflite) + activations "
            f"{graph.peak_activation_bytes:,} B (estimated: tensor liveness) "
            f"+ runtime {int(profile.cost_model.runtime_ram_bytes):,} B (profile estimate)")
        return Measured(figures)
