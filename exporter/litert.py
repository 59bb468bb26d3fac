"""Running a .tflite model on this machine with the real LiteRT interpreter.

Inputs are given in float and quantized with the model's own scale and zero
point when its input is int8/uint8; outputs are dequantized likewise, so
predictions compare directly with the Keras model's. A model with several inputs
and outputs takes a tuple of arrays and gives a list, each in the Keras model's
order (mapped through the .tflite's signature names, exporter/io_names.py), every
input quantized and every output dequantized with its own scale and zero point.

Example:
    >>> runner = LiteRTRunner(tiny_tflite)                  # int8 in, int8 out
    >>> probs = runner.predict(np.zeros((3, 8, 8, 1), np.float32))
    >>> probs.shape, probs.dtype, bool(np.allclose(probs.sum(axis=1), 1, atol=0.05))   # dequantized softmax
    ((3, 10), dtype('float32'), True)
    >>> timing = runner.latency_ms(runs=20)                 # after 10 warm-up invokes
    >>> sorted(timing), timing["runs"]
    (['mean', 'p50', 'p90', 'runs'], 20)
    >>> tensor_shapes(tiny_tflite, {"serving_default_image:0": (1, 8, 8, 1)})[0]    # every tensor's shape
    (1, 8, 8, 1)
"""
from __future__ import annotations

import platform
import time

import numpy as np

from exporter.errors import ModelFileError, UsageError
from exporter.progress import progress, quiet_native_stderr
from exporter.tf import litert_interpreter_class


def host_description(threads: int = 1) -> str:
    """Say what this machine is and the LiteRT threads, for the 'measured on' of every host figure.

    Args:
        threads: LiteRT's `num_threads` (the profile's `threads`); default 1.
    """
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            names = [line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    from importlib.metadata import version

    return f"LiteRT {version('ai-edge-litert')} on host {platform.machine()} ({cpu}), {thread_count(threads)}"


def host_cores() -> int:
    """The cores this process may run on (its CPU affinity where the system has one)."""
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def thread_count(threads: int) -> str:
    """'1 thread', '4 threads'."""
    return f"{threads} thread" + ("" if threads == 1 else "s")


def threads_detail(threads: int) -> str:
    """How the host ran LiteRT: "4 threads (LiteRT num_threads=4) on 2 cores available (more threads than cores...)"."""
    cores = host_cores()
    more = f" (more threads than cores: they share them, so this is not a {threads}-core figure)" \
        if threads > cores else ""
    return (f"{thread_count(threads)} (LiteRT num_threads={threads}) on {cores} core{'' if cores == 1 else 's'} "
            f"available{more}")


def _resize(interpreter, input_shapes: dict | None) -> None:
    """Resize the inputs named in `input_shapes` (name -> shape); only their dynamic (-1) dims may change."""
    for detail in interpreter.get_input_details():
        if input_shapes and detail["name"] in input_shapes:
            interpreter.resize_tensor_input(detail["index"], list(input_shapes[detail["name"]]), strict=True)


def tensor_shapes(model_bytes: bytes, input_shapes: dict) -> dict[int, tuple]:
    """The shape of every tensor of the main subgraph with the inputs at `input_shapes`.

    The interpreter (builtin kernels, no delegate) is resized, prepared and invoked once on zeros, so
    that sizes only known when an op runs are exact too.

    Args:
        model_bytes: the .tflite.
        input_shapes: input tensor name -> shape.

    Returns:
        Tensor index -> shape.

    Raises:
        UsageError: the runtime cannot prepare or run the model at these shapes (the reason).
    """
    from ai_edge_litert.interpreter import OpResolverType

    try:
        with quiet_native_stderr():
            no_delegates = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES      # shapes from the builtin kernels
            interpreter = litert_interpreter_class()(model_content=model_bytes,
                                                     experimental_op_resolver_type=no_delegates)
            _resize(interpreter, input_shapes)
            interpreter.allocate_tensors()
            for detail in interpreter.get_input_details():
                interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
            interpreter.invoke()
            return {d["index"]: tuple(int(x) for x in d["shape"]) for d in interpreter.get_tensor_details()}
    except Exception as exc:
        shapes = ", ".join(f"{name!r} {list(shape)}" for name, shape in input_shapes.items())
        reason = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise UsageError(f"LiteRT cannot run the model with input {shapes}: {reason}") from None


def _interpreter(model_bytes: bytes, threads: int, input_shapes: dict | None, delegates: bool):
    """A LiteRT interpreter with its tensors allocated: with LiteRT's default delegate (XNNPACK) or without."""
    from ai_edge_litert.interpreter import OpResolverType

    resolver = OpResolverType.AUTO if delegates else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    with quiet_native_stderr():
        interpreter = litert_interpreter_class()(model_content=model_bytes, num_threads=threads,
                                                 experimental_op_resolver_type=resolver)
        _resize(interpreter, input_shapes)
        interpreter.allocate_tensors()
    return interpreter


class LiteRTRunner:
    """A loaded, verified LiteRT interpreter of a model: `inputs` and `outputs` are its tensors' details.

    `input_shapes` (input name -> shape) resizes inputs with dynamic dims before the tensors are allocated.
    `names`: the Keras model's IOSignature, whose order `inputs` and `outputs` take (None: the tensor order).

    The model runs as LiteRT runs it by default, with the XNNPACK delegate. When XNNPACK refuses a model that
    LiteRT's builtin kernels run (exporter/xnnpack.py), it runs on the builtin kernels: `xnnpack_refusal` then
    holds XNNPACK's reason (None when XNNPACK took it), and `kernels` and `kernels_note` say so for every figure
    measured with the runner.
    """

    def __init__(self, model_bytes: bytes, threads: int = 1, input_shapes: dict | None = None, names=None):
        """Load the model.

        Raises:
            ModelFileError: not even LiteRT's builtin kernels can load and prepare the model (their reason).
        """
        self.xnnpack_refusal: str | None = None
        try:
            self.interpreter = _interpreter(model_bytes, threads, input_shapes, delegates=True)
        except Exception as refused:
            try:
                self.interpreter = _interpreter(model_bytes, threads, input_shapes, delegates=False)
            except Exception as exc:
                reason = " ".join(str(exc).split())[:300] or type(exc).__name__
                raise ModelFileError(f"not a valid TFLite model: {reason}") from None
            from exporter.xnnpack import refusal_reason

            self.xnnpack_refusal = refusal_reason(model_bytes, str(refused) or type(refused).__name__)
        from exporter.io_names import order_details

        self.inputs, self.outputs = order_details(self.interpreter, model_bytes, names)

    @property
    def kernels(self) -> str:
        """What ran the model, for a figure's "on": "" with the XNNPACK delegate (LiteRT's default), else
        ", builtin kernels (XNNPACK refused the model)"."""
        return "" if self.xnnpack_refusal is None else ", builtin kernels (XNNPACK refused the model)"

    @property
    def kernels_note(self) -> str:
        """"" with the XNNPACK delegate, else why LiteRT ran the model on its builtin kernels (a figure's note)."""
        if self.xnnpack_refusal is None:
            return ""
        return (f"LiteRT's default XNNPACK delegate refused the model, so it ran on LiteRT's builtin kernels "
                f"(no default delegate): {self.xnnpack_refusal}")

    @property
    def input(self) -> dict:
        """The first input's details."""
        return self.inputs[0]

    @property
    def output(self) -> dict:
        """The first output's details."""
        return self.outputs[0]

    @staticmethod
    def _quantize(x: np.ndarray, detail: dict) -> np.ndarray:
        dtype = detail["dtype"]
        scale, zero = detail["quantization"]
        if np.issubdtype(dtype, np.integer) and scale:
            info = np.iinfo(dtype)
            return np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)
        return x.astype(dtype)

    @staticmethod
    def _dequantize(y: np.ndarray, detail: dict) -> np.ndarray:
        scale, zero = detail["quantization"]
        if np.issubdtype(y.dtype, np.integer) and scale:
            return (y.astype(np.float32) - zero) * scale
        return y.astype(np.float32)

    def _feed(self, rows: tuple) -> None:
        """Set every input to its sample (batch 1), quantized."""
        for detail, row in zip(self.inputs, rows):
            self.interpreter.set_tensor(detail["index"], self._quantize(row[None, ...], detail))

    def predict_all(self, x, description: str = "running LiteRT") -> list[np.ndarray]:
        """Run each sample with batch 1; every output's float values, stacked, in the model's output order.

        Args:
            x: the samples: an array for a single-input model, else a tuple of arrays in the model's input order.
        """
        parts = x if isinstance(x, tuple) else (x,)
        outputs: list[list] = [[] for _ in self.outputs]
        with progress(description, total=len(parts[0])) as advance:
            for i in range(len(parts[0])):
                self._feed(tuple(a[i] for a in parts))
                self.interpreter.invoke()
                for out, detail in zip(outputs, self.outputs):
                    out.append(self._dequantize(self.interpreter.get_tensor(detail["index"]), detail)[0])
                advance()
        return [np.stack(out) for out in outputs]

    def predict(self, x, description: str = "running LiteRT", output: int = 0) -> np.ndarray:
        """Run each sample with batch 1 and return output `output`'s float values, stacked."""
        return self.predict_all(x, description)[output]

    def latency_ms(self, sample=None, *, warmup: int = 10, runs: int = 100) -> dict:
        """Time `invoke()` after warm-up with every input fed (`sample`: one array, or a tuple per input; None:
        zeros); returns p50/p90/mean in ms and the run count."""
        if sample is None:
            sample = tuple(np.zeros(d["shape"], dtype=np.float32)[0] for d in self.inputs)
        self._feed(sample if isinstance(sample, tuple) else (sample,))
        for _ in range(warmup):
            self.interpreter.invoke()
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            self.interpreter.invoke()
            times.append((time.perf_counter() - start) * 1e3)
        return {"p50": float(np.percentile(times, 50)), "p90": float(np.percentile(times, 90)),
                "mean": float(np.mean(times)), "runs": runs}
