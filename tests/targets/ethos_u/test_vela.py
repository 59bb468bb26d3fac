"""Tests for targets.ethos_u.vela: the real Vela CLI on real models."""
from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

os.environ["TF_USE_LEGACY_KERAS"] = "1"

import numpy as np
import pytest

from targets.ethos_u import vela as vela_mod
from exporter.analysis.graph import Graph
from targets.ethos_u.vela import compile_for_ethos_u, cpu_operator_count, vela_available
from exporter.errors import ConfigError, ConversionError, UsageError



def test_vela_is_installed():
    assert vela_available(), "vela is missing: it is pinned in requirements.lock (ethos-u-vela)"

CORSTONE_300 = dict(accelerator_config="ethos-u55-128", system_config="Ethos_U55_High_End_Embedded",
                    memory_mode="Shared_Sram")
DEMO_OPS = ["CONV_2D", "CONV_2D", "MAX_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "FULLY_CONNECTED",
            "SOFTMAX"]


@pytest.fixture(scope="module")
def demo_models(demo):
    """The demo CNN converted once as full-integer int8 and once as float32."""
    from exporter import tf as tfmod
    from exporter.stages.convert import ConvertConfig, convert

    model = tfmod.keras().models.load_model(demo.model_path, compile=False)
    return {"int8": convert(model, ConvertConfig(mode="int8", io_dtype="int8"), calib=demo.calib.x),
            "float32": convert(model, ConvertConfig(mode="float32"))}


@pytest.fixture(scope="module")
def u55_demo(demo_models):
    return compile_for_ethos_u(demo_models["int8"], **CORSTONE_300)


@pytest.fixture(scope="module")
def gather_model():
    """An int8 model ending in GATHER, which Ethos-U55 cannot run (only U85 can)."""
    from exporter import tf as tfmod
    from exporter.stages.convert import ConvertConfig, convert

    tf, keras = tfmod.tensorflow(), tfmod.keras()
    keras.utils.set_random_seed(0)
    inp = keras.layers.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inp)
    x = keras.layers.Dense(6)(keras.layers.Flatten()(x))
    x = keras.layers.Lambda(lambda t: tf.gather(t, [5, 0, 3, 1], axis=1))(x)
    calib = np.random.default_rng(0).random((40, 8, 8, 1), dtype=np.float32)
    return convert(keras.Model(inp, x), ConvertConfig(mode="int8", io_dtype="int8"), calib=calib)


def test_demo_int8_runs_wholly_on_the_u55(u55_demo, demo_models):
    r = u55_demo
    assert [op.name for op in Graph.from_bytes(demo_models["int8"]).ops] == DEMO_OPS
    # Every op, SOFTMAX included, goes to the NPU (the RESHAPE is folded away).
    assert (r.npu_ops, r.cpu_ops, r.cpu_op_names) == (7, 0, [])
    assert cpu_operator_count(r.log) == 0
    out = Graph.from_bytes(r.optimised_tflite)
    assert [op.name for op in out.ops] == ["CUSTOM:ethos-u"]


def test_demo_int8_figures_come_from_the_summary_csv(u55_demo, demo_models):
    r = u55_demo
    header = r.summary_csv.splitlines()[0].split(",")
    for column in ("sram_memory_used", "off_chip_flash_memory_used", "cycles_total", "nn_macs"):
        assert column in header
    row = r.summary
    assert row["accelerator_configuration"] == "Ethos_U55_128"
    assert row["system_config"] == "Ethos_U55_High_End_Embedded"
    assert row["memory_mode"] == "Shared_Sram"
    assert float(row["core_clock"]) == 500e6
    assert r.sram_bytes == round(float(row["sram_memory_used"]) * 1024) > 0
    assert r.flash_bytes == round(float(row["off_chip_flash_memory_used"]) * 1024) > 0
    assert r.dram_bytes == 0
    assert r.cycles == int(row["cycles_total"]) > 0
    # Vela counts the MACs of conv, fc and pooling like Graph, plus softmax's reductions.
    assert r.macs == int(row["nn_macs"]) >= Graph.from_bytes(demo_models["int8"]).total_macs * 0.9
    # Vela's own time estimate is cycles_total / core_clock.
    assert r.latency_ms(500.0) == pytest.approx(float(row["inference_time"]) * 1e3, rel=1e-3)
    assert r.latency_ms(500.0) > 0
    assert r.command[:2] == ["vela", "model.tflite"]
    assert "--show-cpu-operations" in r.command


def test_latency_needs_a_positive_clock(u55_demo):
    for bad in (0, -1.0, float("nan"), "500"):
        with pytest.raises(UsageError, match="clock"):
            u55_demo.latency_ms(bad)


def test_demo_int8_on_u65_uses_dram(demo_models):
    r = compile_for_ethos_u(demo_models["int8"], accelerator_config="ethos-u65-256",
                            system_config="Ethos_U65_High_End", memory_mode="Dedicated_Sram_384KB")
    assert (r.npu_ops, r.cpu_ops) == (7, 0)
    assert r.summary["accelerator_configuration"] == "Ethos_U65_256"
    assert r.sram_bytes > 0 and r.dram_bytes > 0 and r.flash_bytes == 0
    assert r.cycles > 0 and r.latency_ms(1000.0) > 0


def test_float_model_stays_on_the_cpu(demo_models):
    """Vela only accelerates integer ops: a float model compiles, all on the CPU."""
    r = compile_for_ethos_u(demo_models["float32"], **CORSTONE_300)
    assert (r.npu_ops, r.cpu_ops, r.cpu_op_names) == (0, 7, DEMO_OPS)
    assert cpu_operator_count(r.log) == 7
    assert "unsupported DataType Float32" in r.log
    assert r.cycles == r.macs == 0
    assert r.latency_ms(500.0) == 0
    assert Graph.from_bytes(r.optimised_tflite).custom_ops() == []


def test_unsupported_int8_op_falls_back_to_the_cpu(gather_model):
    assert [op.name for op in Graph.from_bytes(gather_model).ops] == [
        "CONV_2D", "RESHAPE", "FULLY_CONNECTED", "GATHER"]
    r = compile_for_ethos_u(gather_model, **CORSTONE_300)
    assert (r.npu_ops, r.cpu_ops, r.cpu_op_names) == (3, 1, ["GATHER"])
    assert cpu_operator_count(r.log) == 1
    assert [op.name for op in Graph.from_bytes(r.optimised_tflite).ops] == ["CUSTOM:ethos-u", "GATHER"]
    assert r.cycles > 0


def test_internal_default_and_own_config_file(gather_model, tmp_path):
    r = compile_for_ethos_u(gather_model, accelerator_config="ethos-u55-128",
                            system_config="internal-default", memory_mode="internal-default")
    assert "--config" not in r.command
    assert r.summary["system_config"] == "Ethos_U55_High_End_Embedded"
    assert r.summary["memory_mode"] == "Shared_Sram"

    ini = Path(importlib.util.find_spec("ethosu").submodule_search_locations[0]) / "config_files/Arm/vela.ini"
    own = tmp_path / "my vela.ini"
    shutil.copy(ini, own)
    r2 = compile_for_ethos_u(gather_model, config_file=own, **CORSTONE_300)
    assert str(own.resolve()) in r2.command
    assert (r2.cycles, r2.sram_bytes) == (r.cycles, r.sram_bytes)


def test_config_errors(gather_model, tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        compile_for_ethos_u(gather_model, config_file=tmp_path / "missing.ini", **CORSTONE_300)
    with pytest.raises(ConfigError, match="System_Config.Nope"):
        compile_for_ethos_u(gather_model, accelerator_config="ethos-u55-128", system_config="Nope",
                            memory_mode="Shared_Sram")
    with pytest.raises(ConfigError, match="ethos-u99"):
        compile_for_ethos_u(gather_model, accelerator_config="ethos-u99",
                            system_config="Ethos_U55_High_End_Embedded", memory_mode="Shared_Sram")


@pytest.mark.parametrize("data", [b"", b"\x00" * 64, bytes(range(256)) * 4, b"xxxxTFL3garbagegarbage"])
def test_garbage_bytes_are_a_conversion_error(data):
    with pytest.raises(ConversionError, match="not a valid TFLite model"):
        compile_for_ethos_u(data, **CORSTONE_300)


def test_timeout_kills_vela(gather_model):
    with pytest.raises(ConversionError, match="did not finish within"):
        compile_for_ethos_u(gather_model, timeout=0.01, **CORSTONE_300)
    with pytest.raises(UsageError, match="timeout"):
        compile_for_ethos_u(gather_model, timeout=0, **CORSTONE_300)


def test_missing_vela_names_the_pip_package(gather_model, monkeypatch):
    monkeypatch.setattr(vela_mod, "_find_vela", lambda: None)
    assert not vela_mod.vela_available()
    with pytest.raises(ConversionError, match="pip install ethos-u-vela"):
        compile_for_ethos_u(gather_model, **CORSTONE_300)


@pytest.mark.reliability(19)
def test_vela_crash_is_a_conversion_error(tmp_path):
    """Real vela segfaults on this almost-TFLite file (compile_for_ethos_u refuses it before
    vela runs); the child-process runner turns the crash into a ConversionError."""
    (tmp_path / "bad.tflite").write_bytes(b"xxxxTFL3garbagegarbage")
    command = [str(vela_mod._find_vela()), "bad.tflite", "--output-dir", "out"]
    with pytest.raises(ConversionError, match=r"vela crashed \(signal 11\)[\s\S]*Failed to load"):
        vela_mod._run(command, tmp_path, 60)
