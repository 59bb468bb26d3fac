"""Targets whose devices run LiteRT / tflite-runtime on an application CPU (phones, Linux boards).

Measured on this machine with the real LiteRT interpreter (on the profile's `threads`): size,
accuracy, fidelity and host latency; with sparse encoding (exporter/sparse/), the same for the model
without it (`model_size_dense`, `host_latency_p50_dense`). Estimated for the device: latency from the profile's cost
model at its `threads` (exporter/analysis/cost_model.py). Mixed: RAM,
the weights read from the model + activations estimated from tensor liveness + the
profile's estimate of the runtime's own memory. `edgex hil run`
replaces the estimates with figures measured on the device.
"""
from __future__ import annotations

from targets.base import Artifacts, Measured, Target


class CpuTarget(Target):
    """A device with an application CPU running LiteRT (subclasses name the device kind)."""

    runtime = "LiteRT (ai-edge-litert) / tflite-runtime"
    # Apps on phones and Linux boards read TFLITE_METADATA (Android Studio's ML Model Binding, MediaPipe Tasks,
    # the LiteRT Task Library): the model gets it (exporter/tflite_metadata/). Microcontroller, Ethos-U and Edge TPU
    # targets do not: their models go into flash or through Vela / edgetpu_compiler, where it is dead weight.
    tflite_metadata = True
    # LiteRT reads TFLite sparse tensors (DENSIFY, sparse FULLY_CONNECTED kernels): pruned weights may be stored
    # sparse (exporter/sparse/); the report then has the dense model's size and host latency beside them.
    sparse_tensors = True
    # LiteRT has float and int8 kernels for the same ops and DEQUANTIZE/QUANTIZE between them: an int8 model may keep
    # its most sensitive layers in float (the recipe's float_layers, exporter/stages/float_layers.py).
    float_layers = True

    def latency_threads(self, profile) -> int:
        """The profile's `threads`: LiteRT splits each op's work over that many threads on the device."""
        return profile.threads

    def measure(self, artifacts: Artifacts) -> Measured:
        from exporter.analysis.cost_model import estimate_latency_ms, estimate_ram_bytes, thread_phrase
        from exporter.checks import ESTIMATED, MIXED, Measurement
        from exporter.litert import thread_count
        from exporter.sparse.figures import sparse_figures

        profile, graph = artifacts.profile, artifacts.graph
        figures = artifacts.host_figures()
        figures.update(sparse_figures(artifacts, figures))       # a sparse model: the dense one, same run and threads
        threads = self.latency_threads(profile)
        figures["latency"] = Measurement(
            "latency", estimate_latency_ms(graph, profile.cost_model, threads), "ms", ESTIMATED,
            f"cost model of {profile.name}, {thread_count(threads)}",
            f"{graph.total_macs:,} MACs over {len(graph.ops)} ops; {thread_phrase(profile.cost_model, threads)}")
        figures["ram"] = Measurement(
            "ram", estimate_ram_bytes(graph, profile.cost_model), "bytes", MIXED,
            f"weights of model.tflite + tensor liveness of the graph + {profile.name} runtime",
            f"weights {graph.weight_bytes:,} B (read from model.tflite) + activations "
            f"{graph.peak_activation_bytes:,} B (estimated: tensor liveness) "
            f"+ runtime {int(profile.cost_model.runtime_ram_bytes):,} B (profile estimate)")
        return Measured(figures)
