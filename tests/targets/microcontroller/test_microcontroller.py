"""Microcontroller target end to end: profiles, arena, C sources, toolchain."""
import json
import re
import subprocess

import numpy as np
import pytest

import exporter
from targets.microcontroller.tflm import measure_arena
from targets.microcontroller.codegen import arena_size
from exporter.profile import load_profile
from exporter.errors import ConfigError, PreflightError, UsageError
from tests.test_cli import run

MCU_PROFILES = ["arduino-nano-33-ble", "esp32-s3", "stm32h743"]


@pytest.fixture(scope="module")
def bundles(demo, tmp_path_factory):
    """The demo exported for every microcontroller profile."""
    root = tmp_path_factory.mktemp("mcu")
    out = {}
    for profile in MCU_PROFILES:
        out[profile] = (exporter.export(demo=True, target="microcontroller", profile=profile,
                                        out=root / profile, progress=False), root / profile)
    return out


@pytest.mark.parametrize("profile", MCU_PROFILES)
def test_demo_exports_and_verifies(bundles, profile):
    report, out = bundles[profile]
    assert report.passed and report.mode == "int8" and report.io_dtype == "int8"
    assert {c.name for c in report.checks} >= {"flash", "ram", "latency", "accuracy_drop", "agreement"}
    assert exporter.verify(out)["status"] == "pass"
    assert report.measurements["latency"].source == "estimated"
    assert report.measurements["latency"].note.endswith("ops; TFLM runs on one core")     # no CPU threads claimed


@pytest.mark.reliability(43)
@pytest.mark.parametrize("profile", MCU_PROFILES)
def test_arena_in_the_bundle_is_what_tflm_measures(bundles, profile):
    report, out = bundles[profile]
    measured = measure_arena((out / "model.tflite").read_bytes())
    assert measured.ok and report.measurements["arena"].value == measured.arena_bytes
    assert report.measurements["arena"].source == "measured"
    header = (out / "mcu" / "model_arena.h").read_text()
    assert f"Measured: {measured.arena_bytes} bytes" in header
    size = int(re.search(r"ArenaSize = (\d+);", header).group(1))
    assert size == arena_size(measured.arena_bytes, 0.1) and size % 16 == 0
    assert measured.arena_bytes * 1.1 <= size < measured.arena_bytes * 1.1 + 16
    overhead = load_profile(profile).cost_model.runtime_ram_bytes
    assert report.measurements["ram"].value == size + overhead, "ram is the arena the code allocates + runtime"


@pytest.mark.reliability(43)
@pytest.mark.parametrize("profile", MCU_PROFILES)
def test_ram_check_is_the_arena_model_arena_h_allocates_plus_runtime(bundles, profile):
    """One arena number: the `ram` check adds the profile's runtime RAM to the header's arena, no other."""
    _, out = bundles[profile]
    header = (out / "mcu" / "model_arena.h").read_text()
    allocated = int(re.search(r"constexpr size_t k\w+ArenaSize = (\d+);", header).group(1))
    manifest = json.loads((out / "manifest.json").read_text())
    ram = next(c for c in manifest["checks"] if c["name"] == "ram")
    runtime = manifest["profile"]["cost_model"]["runtime_ram_bytes"]
    assert allocated + runtime == ram["value"]
    assert ram["source"] == "mixed" and ram["on"] == "measured arena + margin + profile runtime"
    assert f"model_arena.h allocates {allocated:,} B" in ram["note"]
    flash = manifest["measurements"]["flash"]
    assert flash["source"] == "mixed" and "(measured" in flash["note"] and "(profile estimate)" in flash["note"]


@pytest.mark.parametrize("profile", ["arduino-nano-33-ble", "stm32h743"])
def test_generated_c_compiles_and_its_size_matches_the_manifest(bundles, profile):
    report, out = bundles[profile]
    manifest = json.loads((out / "manifest.json").read_text())
    model_bytes = manifest["files"]["model.tflite"]["bytes"]
    flash = manifest["measurements"]["model_flash"]["value"]
    assert model_bytes <= flash <= model_bytes + 16
    text = (out / "mcu" / "model_data.cc").read_text()
    assert "alignas(16)" in text
    assert f"_model_data_len = {model_bytes};" in (out / "mcu" / "model_data.h").read_text()


def test_esp32_has_no_toolchain_here_and_says_so(bundles):
    report, _ = bundles["esp32-s3"]
    flash = report.measurements["flash"]
    assert flash.source == "mixed" and "not compiled" in flash.note


def test_op_resolver_and_arduino_library(bundles):
    _, out = bundles["arduino-nano-33-ble"]
    resolver = (out / "mcu" / "op_resolver.h").read_text()
    ops = re.findall(r"resolver\.(Add\w+)\(\)", resolver)
    assert f"MicroMutableOpResolver<{len(ops)}>" in resolver and len(set(ops)) == len(ops) == 5
    lib = next((out / "arduino").iterdir())
    props = (lib / "library.properties").read_text()
    for key in ("name=", "version=", "sentence=", "architectures="):
        assert key in props
    assert (lib / "examples" / "RunInference" / "RunInference.ino").is_file()
    assert (lib / "src" / "model_data.cpp").is_file()


def test_float_is_refused_on_mcu(tmp_path):
    result = run(["export", "--demo", "--target", "microcontroller", "--quantize", "float32",
                  "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "allowed: int8" in result.stderr


def test_model_that_does_not_fit_exits_1_naming_ram(keras, tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.layers.Input((96, 96, 3)), keras.layers.Conv2D(32, 3, padding="same"),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2, activation="softmax")])
    path = tmp_path / "big.keras"
    model.save(path)
    np.savez(tmp_path / "calib.npz", x=np.random.default_rng(0).random((32, 96, 96, 3), dtype=np.float32))
    result = run(["export", str(path), "--target", "microcontroller", "--calib", str(tmp_path / "calib.npz"),
                  "--out", str(tmp_path / "b")])
    assert result.exit_code == 1
    assert "ram:" in result.stderr and "OVER limit 256.0 KiB" in result.stderr


def test_model_that_does_not_fit_flash(keras, tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.layers.Input((8,)), keras.layers.Dense(1200), keras.layers.Dense(1000),
                              keras.layers.Dense(2, activation="softmax")])
    report = exporter.export(model, target="microcontroller", calib=np.random.default_rng(0).random(
        (32, 8), dtype=np.float32), progress=False)
    assert [c.name for c in report.failed_checks()] == ["flash"]


@pytest.mark.reliability(18)
def test_op_tflm_lacks_is_listed_before_packaging(keras, tmp_path):
    tf = __import__("exporter.tf", fromlist=["tensorflow"]).tensorflow()
    inp = keras.layers.Input((8,))
    out = keras.layers.Lambda(lambda x: tf.math.top_k(x, k=4).values)(keras.layers.Dense(16)(inp))
    with pytest.raises(PreflightError, match="TOPK_V2") as err:
        exporter.export(keras.Model(inp, out), target="microcontroller", out=tmp_path / "b",
                        calib=np.random.default_rng(0).random((32, 8), dtype=np.float32), progress=False)
    assert err.value.exit_code == 4 and not (tmp_path / "b").exists()


def test_model_that_makes_tflm_abort_gives_a_finding(keras, tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.layers.Input((8,)), keras.layers.Dense(16),
                              keras.layers.Dense(4, activation="softmax")])
    model.set_weights([np.full_like(w, 1e-10) for w in model.get_weights()])   # softmax input scale ~1e-10
    report = exporter.export(model, target="microcontroller", out=tmp_path / "b", progress=False,
                             calib=np.random.default_rng(0).random((32, 8), dtype=np.float32))
    failed = report.failed_checks()
    assert [c.name for c in failed] == ["tflm_run"] and "SIGABRT" in failed[0].note
    assert json.loads((tmp_path / "b" / "manifest.json").read_text())["status"] == "fail"


@pytest.mark.reliability(25)
def test_hostile_file_name_gives_valid_c(keras, tmp_path, demo):
    path = tmp_path / "3 my-model (v2)*.keras"
    keras.models.load_model(demo.model_path, compile=False).save(path)
    report = exporter.export(path, target="microcontroller", calib=demo.calib, out=tmp_path / "b", progress=False)
    header = (tmp_path / "b" / "mcu" / "model_data.h").read_text()
    names = re.findall(r"g_(\w+)_model_data_len", header)
    assert names and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", names[0])
    assert report.measurements["model_flash"].value >= len((tmp_path / "b" / "model.tflite").read_bytes())
    compiled = subprocess.run(["arm-none-eabi-gcc", "-x", "c++", "-std=c++11", "-mcpu=cortex-m4", "-mthumb", "-c",
                              str(tmp_path / "b" / "mcu" / "model_data.cc"), "-o", str(tmp_path / "m.o")],
                             capture_output=True, text=True)
    assert compiled.returncode == 0, compiled.stderr


def test_mcu_profile_needs_its_section(tmp_path):
    from exporter.profile import PROFILE_DIR

    text = (PROFILE_DIR / "arduino-nano-33-ble.yaml").read_text()
    (tmp_path / "p.yaml").write_text(text.split("microcontroller:\n")[0])
    with pytest.raises(ConfigError, match="microcontroller"):
        exporter.export(demo=True, target="microcontroller", profile=tmp_path / "p.yaml", progress=False)
    with pytest.raises(UsageError):
        exporter.export(demo=True, target="microcontroller", quantize="dynamic", progress=False)
