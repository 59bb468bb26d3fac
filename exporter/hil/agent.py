"""edgex device agent: run one .tflite model on this device and print one JSON line.

A standalone file (standard library, numpy and one TFLite runtime; Python 3.8+, numpy 1 or 2)
that edgex pushes to a device with the model and the bundle's manifest. It checks the model's
sha256 against the manifest before loading it, loads it with the runtime's flatbuffer verifier
(inputs with dynamic dims resized to the manifest's `input_shapes`, the shape edgex measured at),
times warm-up and timed invokes on zero inputs with `--threads` (and `--delegate`), measures the
model's own memory (resident memory after loading and invoking it minus before its file was read),
optionally scores the bundle's eval samples, and prints exactly one JSON object (protocol 1, see
exporter/hil/result.py) on stdout. Several inputs and outputs go in the order of the manifest's `io`;
eval samples are `x` or `x0`, `x1`, ..., `y` its `label_output`'s.

The model is first loaded and invoked once in a child process (`--probe`), so that a model
which crashes the runtime (old runtimes do not verify the flatbuffer) is reported, not fatal.

Exit codes: 0 ran, 2 bad usage or not a valid model, 3 integrity failure (sha256 mismatch),
4 the runtime could not run the model, 5 no TFLite runtime on this device, 70 agent bug.

Example: `python3 edgex_agent.py --model model.tflite --manifest manifest.json --threads 4` prints `{"protocol": 1, ...}`.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time

PROTOCOL = 1
RUNTIMES = (("tflite_runtime", "tflite_runtime.interpreter"), ("ai_edge_litert", "ai_edge_litert.interpreter"),
            ("tensorflow", "tensorflow.lite.python.interpreter"))


class AgentFailure(Exception):
    """A failure the agent reports as ok=false with its exit code."""

    def __init__(self, message, code):
        super().__init__(message)
        self.code = code


def find_runtime():
    """The first importable TFLite runtime: (name, version, its interpreter module)."""
    tried = []
    for name, module in RUNTIMES:
        try:
            mod = importlib.import_module(module)
        except Exception as exc:  # ImportError, or a broken install raising anything
            tried.append("%s (%s)" % (name, type(exc).__name__))
            continue
        version = str(getattr(sys.modules.get(name), "__version__", "") or "unknown")
        return name, version, mod
    raise AgentFailure("no TFLite runtime on this device; tried " + ", ".join(tried)
                       + "; install one: pip install tflite-runtime (or ai-edge-litert)", 5)


def check_model(actual, manifest_path):
    """Refuse a model whose sha256 `actual` is not the manifest's (exit 3); return its `input_shapes` and `io`."""
    try:
        with open(manifest_path, "rb") as f:
            manifest = json.loads(f.read(1 << 24).decode("utf-8"))
    except (OSError, ValueError) as exc:
        raise AgentFailure("cannot read manifest %s: %s" % (manifest_path, exc), 2)
    try:
        expected = manifest["files"]["model.tflite"]["sha256"]
    except (KeyError, TypeError):
        raise AgentFailure("manifest %s lists no sha256 for model.tflite" % manifest_path, 3)
    if actual != expected:
        raise AgentFailure("model.tflite sha256 %s does not match the manifest's %s; the model was "
                           "changed or corrupted in transfer; refusing to run it" % (actual, expected), 3)
    try:  # the shapes a model with dynamic (-1) input dims was measured at; the I/O order (older manifests: none)
        io = manifest.get("io") or None
        order = io and ([int(t["index"]) for t in io["inputs"]], [int(t["index"]) for t in io["outputs"]],
                        [t["name"] for t in io["outputs"]].index(io["label_output"]))
        return {str(k): [int(d) for d in v] for k, v in (manifest.get("input_shapes") or {}).items()}, order
    except (AttributeError, TypeError, ValueError, KeyError, IndexError):
        raise AgentFailure("manifest %s has malformed input_shapes or io" % manifest_path, 2)


def io_details(interpreter, order):
    """(input details, output details, label output position) in the manifest's order; tensor order without it."""
    ins, outs = interpreter.get_input_details(), interpreter.get_output_details()
    by_index = dict((d["index"], d) for d in ins + outs)
    if order and any(i not in by_index for i in order[0] + order[1]):
        raise AgentFailure("the manifest's io names tensors the model does not have", 2)
    return ([by_index[i] for i in order[0]], [by_index[i] for i in order[1]], order[2]) if order else (ins, outs, 0)


def probe(args):
    """Load and invoke the model once in a child process; a runtime crash becomes an AgentFailure."""
    argv = [sys.executable, os.path.abspath(__file__), "--probe", "--model", args.model, "--manifest",
            args.manifest, "--threads", str(args.threads), "--delegate", args.delegate, "--runs", "1", "--warmup", "0"]
    try:
        done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=600)
    except subprocess.TimeoutExpired:
        raise AgentFailure("loading the model did not finish in 600 s", 4)
    if done.returncode < 0:
        name = dict((s.value, s.name) for s in signal.Signals).get(-done.returncode, "signal %d" % -done.returncode)
        raise AgentFailure("model.tflite is not a valid model: the runtime crashed loading it (%s)" % name, 2)
    lines = [line for line in done.stdout.decode("utf-8", "replace").splitlines() if line.strip()]
    try:
        answer = json.loads(lines[-1])
    except (IndexError, ValueError):
        raise AgentFailure("model probe exited %d without an answer: %s"
                           % (done.returncode, done.stderr.decode("utf-8", "replace")[-300:].strip()), 4)
    if not answer.get("ok"):
        raise AgentFailure(str(answer.get("error")), done.returncode or 4)


def input_shape(detail, shapes):
    """The manifest's shape for an input with dynamic (-1) dims (else 1 for each -1); None for a static one."""
    signature = [int(d) for d in detail.get("shape_signature", detail["shape"])]
    if any(d < 0 for d in signature):
        return shapes.get(detail["name"]) or [max(d, 1) for d in signature]
    return None


def load_interpreter(runtime, model_bytes, args, shapes=None):
    """(interpreter, None); with xnnpack, a model the delegate refuses to prepare (e.g. a requantization scale
    of 256 or more) runs on the builtin kernels, as edgex measured it: (that interpreter, why XNNPACK refused)."""
    builtin = getattr(getattr(runtime, "OpResolverType", None), "BUILTIN_WITHOUT_DEFAULT_DELEGATES", None)
    if args.delegate == "cpu" and builtin is None:  # tflite_runtime >= 2.5 and ai_edge_litert have OpResolverType
        raise AgentFailure("--delegate cpu needs a runtime that can turn XNNPACK off (OpResolverType)", 2)
    refusal = None
    for resolver in [builtin] if args.delegate == "cpu" else [None] + [builtin] * (builtin is not None):
        kwargs = {"model_content": model_bytes, "num_threads": args.threads}
        if resolver is not None:
            kwargs["experimental_op_resolver_type"] = resolver
        try:
            interpreter = runtime.Interpreter(**kwargs)
        except Exception as exc:
            raise AgentFailure("model.tflite is not a valid model: " + first_line(exc), 2)
        try:
            for detail in interpreter.get_input_details():
                shape = input_shape(detail, shapes or {})
                if shape is not None:
                    interpreter.resize_tensor_input(detail["index"], shape)
            interpreter.allocate_tensors()
            return interpreter, refusal
        except Exception as exc:
            refusal = first_line(exc)
    raise AgentFailure("the runtime cannot prepare the model: " + refusal, 4)


def first_line(exc):
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def quantization(detail):
    scale, zero_point = detail.get("quantization", (0.0, 0))
    return float(scale), int(zero_point)


def to_input(np, sample, detail):
    """Cast (quantize when the input is quantized) one float sample to the input tensor."""
    dtype = np.dtype(detail["dtype"])
    scale, zero_point = quantization(detail)
    x = np.asarray(sample, dtype=np.float64).reshape(detail["shape"])
    if np.issubdtype(dtype, np.integer):
        x = np.clip(np.round(x / scale + zero_point) if scale else x, np.iinfo(dtype).min, np.iinfo(dtype).max)
    return x.astype(dtype)


def from_output(np, raw, detail):
    scale, zero_point = quantization(detail)
    quantized = scale and np.issubdtype(np.asarray(raw).dtype, np.integer)
    return (np.asarray(raw, np.float64) - zero_point) * scale if quantized else np.asarray(raw, np.float64)


def invoke(interpreter):
    try:
        interpreter.invoke()
    except Exception as exc:
        raise AgentFailure("invoke failed: " + first_line(exc), 4)


def time_model(np, interpreter, warmup, runs, order=None):
    inputs, outputs, _ = io_details(interpreter, order)
    for detail in inputs:
        interpreter.set_tensor(detail["index"], to_input(np, np.zeros(detail["shape"]), detail))  # real zeros
    for _ in range(warmup):
        invoke(interpreter)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        invoke(interpreter)
        times.append((time.perf_counter() - start) * 1000.0)
    digest = hashlib.sha256(b"".join(np.ascontiguousarray(interpreter.get_tensor(d["index"])).tobytes()
                                     for d in outputs)).hexdigest()
    ms = np.asarray(times, dtype=np.float64)      # runs >= 1 (parse_args)
    return {"p50": float(np.percentile(ms, 50)), "p90": float(np.percentile(ms, 90)), "mean": float(ms.mean()),
            "runs": len(times)}, digest


def evaluate(np, interpreter, path, limit, order=None):
    """Top-1 accuracy (%) of the label output on up to `limit` samples of an .npz: x (or x0, x1, ...) and y."""
    inputs, outputs, label = io_details(interpreter, order)
    names = ["x"] if len(inputs) == 1 else ["x%d" % i for i in range(len(inputs))]
    try:
        with np.load(path, allow_pickle=False) as data:
            xs, y = [np.asarray(data[name]) for name in names], np.asarray(data["y"])
    except Exception as exc:
        raise AgentFailure("cannot read eval samples %s: %s" % (path, str(exc)[:200]), 2)
    y = y.argmax(axis=1) if y.ndim == 2 else y
    n = min([int(limit), len(y)] + [len(x) for x in xs])
    if n == 0:
        return None, 0
    for name, x, detail in zip(names, xs, inputs):
        if int(np.prod(detail["shape"])) != int(np.prod(x.shape[1:])):
            raise AgentFailure("eval samples %s of shape %s do not fit the model input %s"
                               % (name, tuple(x.shape[1:]), tuple(int(d) for d in detail["shape"])), 2)
    correct = 0
    for i in range(n):
        for x, detail in zip(xs, inputs):
            interpreter.set_tensor(detail["index"], to_input(np, x[i], detail))
        invoke(interpreter)
        scores = from_output(np, interpreter.get_tensor(outputs[label]["index"]), outputs[label])
        correct += int(int(np.argmax(scores.reshape(-1))) == int(y[i]))
    return 100.0 * correct / n, n


def status_bytes(key):
    """A figure of /proc/self/status in bytes (VmRSS: resident now, VmHWM: peak of this process image)."""
    try:
        with open("/proc/self/status") as f:
            return next((int(line.split()[1]) * 1024 for line in f if line.startswith(key + ":")), None)
    except (OSError, ValueError, IndexError):
        return None


def peak_rss_bytes():
    """Peak resident memory of this process image: VmHWM on Linux, since ru_maxrss carries over the
    parent's peak across fork+exec (an agent started by a 700 MB edgex process would report 700 MB)."""
    peak = status_bytes("VmHWM")
    if peak is None and sys.platform == "darwin":  # no /proc; ru_maxrss is in bytes there
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak


def device_info(np, threads):
    info = {"machine": platform.machine(), "platform": platform.platform(), "hostname": socket.gethostname(),
            "python": platform.python_version(), "cpu_count": os.cpu_count(), "threads": threads,
            "numpy": np.__version__}
    try:
        with open("/proc/cpuinfo", "r", errors="replace") as f:
            text = f.read(1 << 16)
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip().lower(), value.strip()
        if key in ("model name", "hardware", "cpu model") and value and "cpu" not in info:
            info["cpu"] = value
        elif key == "model" and value and not value.isdigit():
            info["board"] = value
    return {k: (v[:200] if isinstance(v, str) else v) for k, v in info.items()}


def parse_args(argv):
    parser = argparse.ArgumentParser(description="Run a .tflite model and print one JSON line.")
    parser.add_argument("--model", required=True)
    parser.add_argument("--manifest", required=True)
    for flag, default in (("--warmup", 10), ("--runs", 50), ("--eval-samples", 0), ("--threads", 1)):
        parser.add_argument(flag, type=int, default=default)
    parser.add_argument("--eval", default=None, help=".npz with x (or x0, x1, ...) and y")
    parser.add_argument("--delegate", choices=("cpu", "xnnpack"), default="xnnpack")  # cpu: no default delegate
    parser.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not (0 <= args.warmup <= 1000000 and 1 <= args.runs <= 1000000 and args.eval_samples >= 0 and args.threads >= 1):
        raise AgentFailure("--warmup must be 0..1000000, --runs 1..1000000, --eval-samples >= 0, --threads >= 1", 2)
    return args


def run(argv, result):
    """Fill `result` in place; raise AgentFailure on a reportable failure."""
    args = parse_args(argv)
    import numpy as np

    result["device"], result["threads"], result["delegate"] = device_info(np, args.threads), args.threads, args.delegate
    try:  # imported before the model is read, so that its memory is not counted as the model's
        result["runtime"], result["runtime_version"], runtime = find_runtime()
    except AgentFailure as exc:  # reported after the integrity check
        runtime = exc
    before = status_bytes("VmRSS")
    try:
        with open(args.model, "rb") as f:
            model_bytes = f.read()
    except OSError as exc:
        raise AgentFailure("cannot read model %s: %s" % (args.model, exc.strerror or exc), 2)
    result["model_sha256"] = hashlib.sha256(model_bytes).hexdigest()
    shapes, order = check_model(result["model_sha256"], args.manifest)
    if isinstance(runtime, AgentFailure):
        raise runtime
    if not args.probe:
        probe(args)
    interpreter, refusal = load_interpreter(runtime, model_bytes, args, shapes)
    if refusal is not None:
        result["delegate"], result["xnnpack_refusal"] = "cpu", refusal
    result["latency_ms"], result["output_digest"] = time_model(np, interpreter, args.warmup, args.runs, order)
    if args.probe:
        return
    after = status_bytes("VmRSS")
    if None not in (before, after):
        result.update(rss_before_bytes=before, model_memory_bytes=max(0, after - before), memory_kind="rss_delta")
    if args.eval and args.eval_samples:
        result["accuracy"], result["eval_samples"] = evaluate(np, interpreter, args.eval, args.eval_samples, order)


def main(argv=None):
    result = {"protocol": PROTOCOL, "ok": False, "error": None, "runtime": "none", "runtime_version": "",
              "model_sha256": "0" * 64, "device": {}}
    # Native runtime code may print to fd 1: send it to stderr so stdout carries only our JSON line.
    sys.stdout.flush()
    saved_stdout = os.dup(1)
    os.dup2(2, 1)
    code = 0
    try:
        run(argv, result)
        result["ok"] = True
    except AgentFailure as exc:
        result["error"], code = str(exc)[:3900], exc.code
    except SystemExit as exc:  # argparse: usage already printed on stderr
        result["error"], code = "bad agent arguments (see stderr)", 2 if exc.code else 0
    except KeyboardInterrupt:
        result["error"], code = "interrupted", 130
    except Exception as exc:
        import traceback

        traceback.print_exc()
        result["error"], code = ("agent bug: %s: %s" % (type(exc).__name__, exc))[:3900], 70
    finally:
        sys.stdout.flush()
        os.dup2(saved_stdout, 1)
        os.close(saved_stdout)
    result["peak_rss_bytes"] = peak_rss_bytes()
    sys.stdout.write(json.dumps(result, allow_nan=False, default=str) + "\n")
    sys.stdout.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
