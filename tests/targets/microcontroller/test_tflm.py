"""Tests for targets.microcontroller.tflm: op coverage, op resolver, and the arena measured on real TFLM."""
from __future__ import annotations

import os
import re
from pathlib import Path

os.environ["TF_USE_LEGACY_KERAS"] = "1"

import numpy as np
import pytest

from exporter.analysis.graph import Graph, OpInfo
from targets.microcontroller.tflm import (TFLM_OPS, ArenaResult, measure_arena, op_resolver_source,
                                    unsupported_ops)
from exporter.errors import PreflightError, UsageError


def _int8(model, calib: np.ndarray) -> bytes:
    from exporter.stages.convert import ConvertConfig, convert

    return convert(model, ConvertConfig(mode="int8", io_dtype="int8", min_calibration_samples=1), calib=calib)


@pytest.fixture(scope="module")
def demo_int8(demo, keras):
    model = keras.models.load_model(demo.model_path, compile=False)
    return _int8(model, demo.calib.x)


@pytest.fixture(scope="module")
def demo_arena(demo_int8):
    return measure_arena(demo_int8)


@pytest.fixture(scope="module")
def topk_int8(keras):
    """Dense -> tf.math.top_k: TOPK_V2 is a TFLite builtin that TFLM has no kernel for."""
    from exporter import tf as tfmod

    tf = tfmod.tensorflow()
    keras.utils.set_random_seed(0)
    inp = keras.layers.Input((8,))
    out = keras.layers.Lambda(lambda x: tf.math.top_k(x, k=4).values)(keras.layers.Dense(16)(inp))
    return _int8(keras.Model(inp, out), np.random.default_rng(0).random((8, 8), dtype=np.float32))


@pytest.fixture(scope="module")
def mobilenet_int8(keras):
    """Untrained MobileNetV2 with its classifier head: TFLM aborts on it (SOFTMAX scale)."""
    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, weights=None, classes=10)
    return _int8(model, np.random.default_rng(0).random((4, 32, 32, 3), dtype=np.float32))


def test_tflm_ops_match_installed_runtime():
    import tflite
    import tflite_micro

    so = next(Path(tflite_micro.__file__).parent.rglob("_runtime*.so")).read_bytes()
    builtins = {k for k in vars(tflite.BuiltinOperator) if not k.startswith("_")}
    assert len(set(TFLM_OPS.values())) == len(TFLM_OPS)
    for op, method in TFLM_OPS.items():
        assert re.fullmatch(r"Add[A-Za-z0-9]+", method), method
        if op.startswith("CUSTOM:"):
            code = op.split(":", 1)[1]
            assert code == "ethos-u" or code.encode() + b"\0" in so, op
        else:
            assert op in builtins, op
            assert f"Register_{op}".encode() in so, op
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "SOFTMAX", "QUANTIZE"} <= set(TFLM_OPS)
    assert "TOPK_V2" not in TFLM_OPS and "TILE" not in TFLM_OPS


def test_measure_arena_demo(demo_int8, demo_arena):
    r = demo_arena
    assert isinstance(r, ArenaResult)
    assert r.ok and r.invoked and r.finding is None, r.finding
    graph = Graph.from_bytes(demo_int8)
    largest = max(t.nbytes for t in graph.tensors if not t.is_constant)
    assert r.arena_bytes >= largest > 0
    assert r.head_bytes + r.tail_bytes == r.arena_bytes
    assert "Arena allocation total" in r.log
    assert measure_arena(demo_int8).arena_bytes == r.arena_bytes  # deterministic


def test_arena_of_exactly_the_measured_size_suffices(demo_int8, demo_arena):
    exact = measure_arena(demo_int8, arena_size=demo_arena.arena_bytes)
    assert exact.ok and abs(exact.arena_bytes - demo_arena.arena_bytes) <= 16  # alignment only
    small = measure_arena(demo_int8, arena_size=demo_arena.arena_bytes // 2)
    assert not small.ok and small.arena_bytes is None
    assert "too small" in small.finding and "creating the interpreter" in small.finding


def test_measure_arena_timeout_and_bad_input(demo_int8):
    r = measure_arena(demo_int8, timeout=0.01)
    assert not r.ok and "did not finish within 0.01 s" in r.finding
    bad = measure_arena(demo_int8[: len(demo_int8) // 2])
    assert not bad.ok and "could not be read" in bad.finding
    with pytest.raises(UsageError, match="bytes"):
        measure_arena("model.tflite")
    with pytest.raises(UsageError, match="arena_size"):
        measure_arena(demo_int8, arena_size=0)


def test_op_resolver_source_demo(demo_int8):
    graph = Graph.from_bytes(demo_int8)
    ops = set(graph.op_counts())
    src = op_resolver_source(graph)
    assert '#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"' in src
    assert f"using OpResolver = tflite::MicroMutableOpResolver<{len(ops)}>;" in src
    assert "inline TfLiteStatus RegisterOps(OpResolver& resolver) {" in src
    calls = re.findall(r"resolver\.(Add\w+)\(\) != kTfLiteOk\) return kTfLiteError;", src)
    assert sorted(calls) == sorted(TFLM_OPS[op] for op in ops)
    assert set(calls) <= set(TFLM_OPS.values())
    assert src.count("{") == src.count("}") and src.rstrip().endswith("}")
    assert "using Digits = " in op_resolver_source(graph, name="Digits")
    with pytest.raises(UsageError, match="identifier"):
        op_resolver_source(graph, name="not an id")


@pytest.mark.reliability(18)
def test_unsupported_op_topk(topk_int8):
    graph = Graph.from_bytes(topk_int8)
    assert unsupported_ops(graph) == ["TOPK_V2"]
    r = measure_arena(topk_int8)
    assert not r.ok and not r.invoked and r.arena_bytes is None
    assert "TOPK_V2" in r.finding and "no kernel" in r.finding
    assert "Didn't find op for builtin opcode 'TOPK_V2'" in r.log
    with pytest.raises(PreflightError, match="TOPK_V2"):
        op_resolver_source(graph)


def test_unsupported_custom_ops():
    def op(i, name):
        return OpInfo(i, name, 1, (), (), 0, "int8", name.startswith("CUSTOM:"))

    graph = Graph((op(0, "CUSTOM:MyOp"), op(1, "CUSTOM:ethos-u"), op(2, "CONV_2D"), op(3, "CUSTOM:MyOp"),
                   op(4, "TILE")), (), (), (), 1)
    assert unsupported_ops(graph) == ["CUSTOM:MyOp", "TILE"]


@pytest.mark.reliability(19)
def test_tflm_abort_is_a_finding(mobilenet_int8):
    r = measure_arena(mobilenet_int8)
    assert not r.ok and r.arena_bytes is None and not r.invoked
    assert "TFLM aborted (signal 6 SIGABRT) while creating the interpreter" in r.finding
    assert "SOFTMAX" in r.finding  # the known cause is named
    os.kill(os.getpid(), 0)  # this process is alive
