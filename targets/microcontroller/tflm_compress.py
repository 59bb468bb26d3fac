"""Child process of `targets.microcontroller.compression.compress_for_tflm`: compress for TFLM and prove it.

Usage:
    python -m targets.microcontroller.tflm_compress MODEL SAMPLES OUT [PLANS]

MODEL is the uncompressed .tflite, SAMPLES an .npz with one array per input slot (`slot0`, ...: the
samples, batch first, in the input's dtype), OUT where the compressed model goes, PLANS an optional JSON
list of `TensorPlan` dicts to use instead of `compression_spec.choose` (tests force a wrong spec with it).

Steps, each announced as `{"stage": ...}` on stdout (the protocol of `tflm_probe`):
1. every constant tensor of subgraph 0 gets a plan (`compression_spec.choose`);
2. each candidate is compressed alone (`tflite_micro.compression.compress`): one the compressor refuses,
   or whose DECODE op, ancillary and decoded tensors and names make the model grow, is skipped;
3. the uncompressed and the compressed model run on TFLM (`tflite_micro` runtime) on every sample; the
   outputs must be identical, bit for bit. On a difference each tensor is proved alone, the ones that
   differ are dropped (status "dropped", with how many samples differed), and the rest proved again.

The result, `{"result": {...}}` last: `ok`, `plans` (dicts), `identical` and `total` (samples whose
outputs were identical on the model written to OUT), `bytes_before`, `bytes_after`, `compressed`
(whether OUT was written). TFLM runs here only, never inside edgex: it aborts the process on some models.
"""
from __future__ import annotations

import json
import os
import sys
import warnings

import numpy as np

from targets.microcontroller.compression_spec import TensorPlan, choose


def read_plans(data: bytes) -> list[TensorPlan]:
    """A plan for every constant tensor of subgraph 0 (`compression_spec.choose`)."""
    from tflite_micro.tensorflow.lite.micro.compression import model_editor

    plans = []
    for i, tensor in enumerate(model_editor.read(data).subgraphs[0].tensors):
        if tensor.buffer is None or not tensor.buffer.data or tensor.is_variable:
            continue
        q = tensor.quantization
        quant = None if q is None else {"scale": list(np.atleast_1d(q.scales)),
                                        "quantized_dimension": int(q.axis or 0)}
        plans.append(choose(i, tensor.name or f"tensor {i}", tensor.array, quant))
    return plans


def compress_with(data: bytes, plans: list[TensorPlan]) -> bytes:
    """The model with `plans` applied (LUT, per tensor or per channel along `axis`)."""
    from tflite_micro.tensorflow.lite.micro.compression import SpecBuilder, compress, spec

    builder = SpecBuilder()
    for p in plans:
        mode = spec.PerTensor() if p.axis is None else spec.PerChannel(axis=p.axis)
        builder.add_tensor(subgraph=0, tensor=p.index).with_lut(index_bitwidth=p.bits, mode=mode)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bytes(compress(data, builder.build()))


def outputs(data: bytes, samples: list[np.ndarray]) -> list[list[np.ndarray]]:
    """Every output of every sample, run one by one on the TFLM interpreter."""
    from tflite_micro.python.tflite_micro import runtime

    from exporter.analysis.graph import Graph

    interpreter = runtime.Interpreter.from_bytes(data, arena_size=64 << 20)
    shapes = [tuple(interpreter.get_input_details(s)["shape"]) for s in range(len(samples))]
    count = len(Graph.from_bytes(data).outputs)
    results = []
    for i in range(len(samples[0])):
        interpreter.reset()
        for slot, (x, shape) in enumerate(zip(samples, shapes)):
            interpreter.set_input(x[i].reshape(shape), slot)
        interpreter.invoke()
        results.append([np.array(interpreter.get_output(j), copy=True) for j in range(count)])
    return results


def identical(reference: list, got: list) -> int:
    """Samples whose every output is bit-identical."""
    return sum(all(np.array_equal(a, b) for a, b in zip(r, g)) for r, g in zip(reference, got))


def _with(plan: TensorPlan, status: str, reason: str = "") -> TensorPlan:
    from dataclasses import replace

    return replace(plan, status=status, reason=reason)


def screen(data: bytes, plans: list[TensorPlan], emit) -> list[TensorPlan]:
    """Compress each candidate alone; skip those the compressor refuses or that make the model grow."""
    out = []
    for p in plans:
        if p.status != "candidate":
            out.append(p)
            continue
        emit({"stage": f"compressing tensor {p.index} alone"})
        try:
            grown = len(compress_with(data, [p])) - len(data)
        except Exception as e:        # the compressor's CompressionError and what it wraps
            out.append(_with(p, "skipped", f"the compressor refused it: {' '.join(str(e).split())[:200]}"))
            continue
        if grown >= 0:
            out.append(_with(p, "skipped", f"the model would grow by {grown:,} B: the DECODE op, its ancillary and "
                                           f"decoded tensors and their names outweigh the {p.bytes_before - p.bytes_after:,} B "
                                           "saved"))
        else:
            out.append(p)
    return out


def _together(data: bytes, kept: list, reference: list, samples: list, emit) -> tuple[bytes, int]:
    """The model with every plan of `kept` applied and its samples identical to `reference` (all, for none)."""
    if not kept:
        return data, len(reference)
    emit({"stage": f"proving the model with {len(kept)} compressed tensor(s) on TFLM"})
    model = compress_with(data, kept)
    return model, identical(reference, outputs(model, samples))


def prove(data: bytes, samples: list[np.ndarray], plans: list[TensorPlan], emit) -> tuple:
    """Compress the candidates and prove bit-exact outputs; drop tensors whose outputs differ.

    Returns:
        (final plans, the model bytes (uncompressed when nothing is kept), samples identical, total).
    """
    total = len(samples[0])
    emit({"stage": "running the uncompressed model on TFLM"})
    reference = outputs(data, samples)
    final = {p.index: p for p in plans}
    kept = [p for p in plans if p.status == "candidate"]
    model, same = _together(data, kept, reference, samples, emit)
    if same < total:
        for p in kept:
            emit({"stage": f"proving tensor {p.index} alone"})
            alone = identical(reference, outputs(compress_with(data, [p]), samples))
            if alone < total:
                final[p.index] = _with(p, "dropped", f"outputs differed from the uncompressed model on "
                                                     f"{total - alone:,} of {total:,} samples on TFLM")
        kept = [p for p in kept if final[p.index].status == "candidate"]
        model, same = _together(data, kept, reference, samples, emit)
    if same < total:                  # each bit-exact alone, not together: keep none
        for p in kept:
            final[p.index] = _with(p, "dropped", "bit-exact alone but not together with the others on TFLM")
        model, same = data, total
    done = [_with(p, "compressed") if p.status == "candidate" else p for p in final.values()]
    return done, model, same, total


def run(model_path: str, samples_path: str, out_path: str, plans_path: str | None, emit) -> dict:
    """The whole job; see the module docstring. Every failure is returned, never raised."""
    stage = "reading the model and samples"
    try:
        emit({"stage": stage})
        with open(model_path, "rb") as f:
            data = f.read()
        with np.load(samples_path, allow_pickle=False) as z:
            samples = [z[f"slot{i}"] for i in range(len(z.files))]
        stage = "choosing the tensors to compress"
        emit({"stage": stage})
        if plans_path:
            with open(plans_path, encoding="utf-8") as f:
                plans = [TensorPlan.from_dict(d) for d in json.load(f)]
        else:
            plans = read_plans(data)
        plans = screen(data, plans, emit)
        stage = "proving bit-exact outputs on TFLM"
        plans, model, same, total = prove(data, samples, plans, emit)
        if model is not data:
            with open(out_path, "wb") as f:
                f.write(model)
        return {"ok": True, "plans": [p.to_dict() for p in plans], "identical": same, "total": total,
                "bytes_before": len(data), "bytes_after": len(model), "compressed": model is not data}
    except Exception as e:  # reported to the parent, never raised
        return {"ok": False, "stage": stage, "error": f"{type(e).__name__}: {e}"}


def main(argv: list[str] | None = None) -> int:
    """Entry point: see the module docstring. Returns the exit code."""
    args = sys.argv[1:] if argv is None else argv
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # native prints and the compressor's warnings go to stderr; `out` keeps the JSON stream

    def emit(obj: dict) -> None:
        out.write(json.dumps(obj) + "\n")
        out.flush()

    if len(args) not in (3, 4):
        emit({"result": {"ok": False, "stage": "reading the arguments",
                         "error": "usage: python -m targets.microcontroller.tflm_compress MODEL SAMPLES OUT [PLANS]"}})
        return 2
    result = run(*args[:3], args[3] if len(args) == 4 else None, emit)
    emit({"result": result})
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
