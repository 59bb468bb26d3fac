"""Running a .tflite model on this machine with the real LiteRT interpreter.

Inputs are given in float and quantized with the model's own scale and zero
point when its input is int8/uint8; outputs are dequantized likewise, so
predictions compare directly with the Keras model's.

Example:
    >>> runner = LiteRTRunner(tiny_tflite)                  # int8 in, int8 out
    >>> probs = runner.predict(np.zeros((3, 8, 8, 1), np.float32))
    >>> probs.shape, probs.dtype, bool(np.allclose(probs.sum(axis=1), 1, atol=0.05))   # dequantized softmax
    ((3, 10), dtype('float32'), True)
    >>> timing = runner.latency_ms(runs=20)                 # after 10 warm-up invokes
    >>> sorted(timing), timing["runs"]
    (['mean', 'p50', 'p90', 'runs'], 20)
"""
from __future__ import annotations

import platform
import time

import numpy as np

from exporter.errors import ModelFileError
from exporter.progress import progress, quiet_native_stderr
from exporter.tf import litert_interpreter_class


def host_description() -> str:
    """Say what this machine is, for the 'measured on' of every host figure."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            names = [line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    from importlib.metadata import version

    return f"LiteRT {version('ai-edge-litert')} on host {platform.machine()} ({cpu}), 1 thread"


class LiteRTRunner:
    """A loaded, verified LiteRT interpreter for one single-input model."""

    def __init__(self, model_bytes: bytes, threads: int = 1):
        try:
            with quiet_native_stderr():
                self.interpreter = litert_interpreter_class()(model_content=model_bytes, num_threads=threads)
                self.interpreter.allocate_tensors()
        except Exception as exc:
            raise ModelFileError(f"not a valid TFLite model: {exc}") from None
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]

    def _quantize(self, x: np.ndarray) -> np.ndarray:
        dtype = self.input["dtype"]
        scale, zero = self.input["quantization"]
        if np.issubdtype(dtype, np.integer) and scale:
            info = np.iinfo(dtype)
            return np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)
        return x.astype(dtype)

    def _dequantize(self, y: np.ndarray) -> np.ndarray:
        scale, zero = self.output["quantization"]
        if np.issubdtype(y.dtype, np.integer) and scale:
            return (y.astype(np.float32) - zero) * scale
        return y.astype(np.float32)

    def predict(self, x: np.ndarray, description: str = "running LiteRT") -> np.ndarray:
        """Run each sample with batch 1 and return the float outputs, stacked."""
        outputs = []
        with progress(description, total=len(x)) as advance:
            for row in x:
                self.interpreter.set_tensor(self.input["index"], self._quantize(row[None, ...]))
                self.interpreter.invoke()
                outputs.append(self._dequantize(self.interpreter.get_tensor(self.output["index"]))[0])
                advance()
        return np.stack(outputs)

    def latency_ms(self, sample: np.ndarray | None = None, *, warmup: int = 10, runs: int = 100) -> dict:
        """Time `invoke()` after warm-up; returns p50/p90/mean in ms and the run count."""
        if sample is None:
            sample = np.zeros(self.input["shape"], dtype=np.float32)[0]
        self.interpreter.set_tensor(self.input["index"], self._quantize(sample[None, ...]))
        for _ in range(warmup):
            self.interpreter.invoke()
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            self.interpreter.invoke()
            times.append((time.perf_counter() - start) * 1e3)
        return {"p50": float(np.percentile(times, 50)), "p90": float(np.percentile(times, 90)),
                "mean": float(np.mean(times)), "runs": runs}
