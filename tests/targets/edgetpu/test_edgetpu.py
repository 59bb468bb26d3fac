"""Edge TPU target: profiles, pre-flight refusals, the static op mapping and its cut, the compiler log parser,
the uncompiled bundle and (with a stand-in compiler on PATH) the compiled one."""
import dataclasses
import json
import os
import stat
import sys
from pathlib import Path

import numpy as np
import pytest

import exporter
from targets.edgetpu.log import parse_compiler_log, parse_size
from targets.edgetpu.ops import EDGETPU_OPS, MAX_OP_VERSION, ModelFacts, map_graph
from exporter.analysis.graph import Graph
from exporter.errors import ConfigError, PreflightError
from exporter.profile import load_profile
from targets.base import Artifacts, get_target
from targets.edgetpu.settings import EdgeTpuSettings
from targets.edgetpu.target import requirement_problems
from tests.test_cli import run

FIXTURES = Path(__file__).resolve().parent / "fixtures"
PROFILES = ["coral-usb", "coral-dev-board"]
IO_DTYPE = {"coral-usb": "int8", "coral-dev-board": "uint8"}   # the profiles' int8_io


@pytest.fixture(scope="module")
def bundles(demo, tmp_path_factory, monkeypatch_module):
    """The demo exported for both Coral profiles, with no compiler on PATH."""
    monkeypatch_module.setenv("PATH", str(tmp_path_factory.mktemp("no-compiler")))
    root = tmp_path_factory.mktemp("edgetpu")
    return {p: (exporter.export(demo=True, target="edgetpu", profile=p, out=root / p, progress=False), root / p)
            for p in PROFILES}


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


@pytest.fixture(scope="module")
def leaky_model(keras):
    """(b): a conv net with a LEAKY_RELU in the middle, an op Coral's table lacks."""
    keras.utils.set_random_seed(3)
    inp = keras.layers.Input((8, 8, 1))
    x = keras.layers.Conv2D(8, 3, padding="same")(inp)
    x = keras.layers.LeakyReLU()(x)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, keras.layers.Dense(3, activation="softmax")(x))


def test_profiles_validate_and_take_8_bit_only():
    for name in PROFILES:
        profile = load_profile(name)
        settings = profile.section("edgetpu")
        assert isinstance(settings, EdgeTpuSettings)
        assert profile.target == "edgetpu" and profile.quantization.allowed == ("int8",)
        assert profile.quantization.int8_io == IO_DTYPE[name] and profile.quantization.weight_bits == (8,)
        assert settings.parameter_cache_bytes == 8 * 1024**2 and settings.runtime_version == 14
        assert settings.compiler_version == "16.0" and settings.tpu_int8_gmacs <= settings.tpu_peak_gmacs


def test_bad_edgetpu_section_names_profile_and_field(tmp_path):
    from exporter.profile import PROFILE_DIR

    text = (PROFILE_DIR / "coral-usb.yaml").read_text()
    bad = text.replace("tpu_int8_gmacs: 115", "tpu_int8_gmacs: -1\n  turbo: true")
    (tmp_path / "bad.yaml").write_text(bad)
    with pytest.raises(ConfigError) as err:
        load_profile(tmp_path / "bad.yaml")
    assert "profile bad: edgetpu.tpu_int8_gmacs" in str(err.value) and "edgetpu.turbo: unknown key" in str(err.value)
    (tmp_path / "none.yaml").write_text(text.split("edgetpu:\n")[0])
    with pytest.raises(ConfigError, match="no 'edgetpu' section"):
        exporter.export(demo=True, target="edgetpu", profile=tmp_path / "none.yaml", progress=False)


@pytest.mark.parametrize("profile", PROFILES)
def test_demo_maps_completely_and_bundle_says_uncompiled(bundles, profile):
    """(a): the demo CNN (int8; int8 or uint8 I/O) maps entirely; without a compiler the bundle holds COMPILE.md."""
    report, out = bundles[profile]
    m = report.measurements
    assert report.passed and report.mode == "int8" and report.io_dtype == IO_DTYPE[profile]
    edge_ops = 2 if IO_DTYPE[profile] == "uint8" else 0     # uint8 I/O adds a QUANTIZE op at each edge
    assert m["tpu_ops"].value == len(report.graph["ops"]) == 7 + edge_ops and m["cpu_ops"].value == 0
    assert "no cut" in m["cpu_ops"].note and m["tpu_ops"].source == "estimated"
    assert m["compiled"].value == 0 and "not found on PATH" in m["compiled"].note
    assert m["param_streamed"].value == 0 and m["param_on_chip"].value > 0
    assert m["latency"].source == "estimated" and "CPU fallback 0 ops" in m["latency"].note
    # threads are the host CPU's, for the fallback ops only (the profile's threads: 1)
    assert "(host cost model, LiteRT on 1 thread; the TPU part has no CPU threads)" in m["latency"].note
    assert any("no cut" in n for n in report.notes) and any("edgetpu_compiler not found" in n for n in report.notes)
    mapping = json.loads((out / "edgetpu" / "mapping.json").read_text())
    assert mapping["compiled"] is False and mapping["static_mapping"]["cut_index"] is None
    assert [o["placement"] for o in mapping["static_mapping"]["ops"]] == ["tpu"] * (7 + edge_ops)
    compile_md = (out / "edgetpu" / "COMPILE.md").read_text()
    assert "edgetpu_compiler -s -m 14 -o ../edgetpu-compiled model.tflite" in compile_md
    assert "apt-get install edgetpu-compiler" in compile_md
    assert not (out / "model_edgetpu.tflite").exists()
    assert exporter.verify(out)["status"] == "pass"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["measurements"]["compiled"]["value"] == 0
    assert manifest["profile"]["edgetpu"]["runtime_version"] == 14


def test_unsupported_op_cuts_the_graph(leaky_model, demo, tmp_path, monkeypatch):
    """(b): LEAKY_RELU is op 1 (int8 I/O: CONV_2D comes first); it and every op after it fall back to the CPU."""
    monkeypatch.setenv("PATH", str(tmp_path))
    report = exporter.export(leaky_model, target="edgetpu", calib=demo.calib.x, out=tmp_path / "b", progress=False)
    names = [op["name"] for op in report.graph["ops"]]
    cut = names.index("LEAKY_RELU")
    m = report.measurements
    assert cut == 1 and m["tpu_ops"].value == cut and m["cpu_ops"].value == len(names) - cut
    assert f"cut at op {cut} LEAKY_RELU" in m["cpu_ops"].note and "CONV_2D" in m["cpu_ops"].note
    assert any(f"cut at op {cut} LEAKY_RELU" in n for n in report.notes)
    static = json.loads((tmp_path / "b" / "edgetpu" / "mapping.json").read_text())["static_mapping"]
    assert static["cut_index"] == cut and "not supported" in static["cut_reason"]
    assert [o["placement"] for o in static["ops"]] == ["tpu"] * cut + ["cpu"] * (len(names) - cut)
    assert "after the cut" in static["ops"][cut + 1]["status"] and static["ops"][cut + 1]["unsupported"] is None
    assert f"CPU fallback {len(names) - cut} ops" in m["latency"].note


def test_parameters_beyond_the_cache_are_streamed(keras, tmp_path, monkeypatch):
    """9.4 MB of int8 weights on the TPU: 8 MiB cached on chip, the rest streamed over USB every inference."""
    monkeypatch.setenv("PATH", str(tmp_path))
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.layers.Input((2048,)), keras.layers.Dense(4608, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
    report = exporter.export(model, target="edgetpu", progress=False,
                             calib=np.random.default_rng(0).random((32, 2048), dtype=np.float32))
    m, cache = report.measurements, 8 * 1024**2
    assert m["cpu_ops"].value == 0 and m["param_on_chip"].value == cache
    streamed = m["param_streamed"].value
    assert streamed > 2048 * 4608 - cache
    assert "streamed over USB 3.0 at 320 MB/s every inference" in m["param_streamed"].note
    assert f"streamed parameters {streamed:,} B" in m["latency"].note
    assert m["latency"].value > streamed / 320e6 * 1e3  # the streaming cost is part of the estimate
    assert any("exceed the 8,388,608 B on-chip cache" in n for n in report.notes)


def test_float_io_is_refused_naming_the_input(demo, keras, tmp_path):
    """(c): int8 ops with float32 I/O: refused before anything is written, naming the input tensor."""
    from exporter.stages.convert import ConvertConfig, convert

    model = keras.models.load_model(demo.model_path, compile=False)
    path = tmp_path / "float_io.tflite"
    path.write_bytes(convert(model, ConvertConfig(mode="int8", io_dtype="float32"), calib=demo.calib.x))
    name = Graph.from_file(path).input_details()[0].name
    with pytest.raises(PreflightError) as err:
        exporter.export(path, target="edgetpu", out=tmp_path / "b", progress=False)
    assert f"input {name!r} is float32" in str(err.value) and "uint8 or int8" in str(err.value)
    assert "output" in str(err.value) and err.value.exit_code == 4 and not (tmp_path / "b").exists()


@pytest.mark.reliability(18)
def test_float_model_lists_every_problem_and_dynamic_shapes(tiny_model, keras):
    """A float model with a dynamic batch: every problem in one error, naming tensors and ops."""
    tf = __import__("exporter.tf", fromlist=["tensorflow"]).tensorflow()
    data = bytes(tf.lite.TFLiteConverter.from_keras_model(tiny_model).convert())
    graph, profile = Graph.from_bytes(data), load_profile("coral-usb")
    problems = requirement_problems(graph, profile, "int8", ModelFacts(data))
    text = "\n".join(problems)
    assert "dynamic size" in text and "[-1, 8, 8, 1]" in text
    assert "not fully quantized: op 0 CONV_2D computes in float32" in text and "is float32" in text
    with pytest.raises(PreflightError) as err:
        get_target("edgetpu").preflight(graph, profile, "int8", tflite=data)
    assert all(p in str(err.value) for p in problems)


def test_op_table_runtime_and_version_limits(bundles):
    _, out = bundles["coral-dev-board"]          # uint8 I/O: QUANTIZE ops at the edges
    data = (out / "model.tflite").read_bytes()
    graph, facts = Graph.from_bytes(data), ModelFacts(data)
    assert map_graph(graph, 14, facts).cut_index is None
    old = map_graph(graph, 12, facts)  # QUANTIZE needs runtime 13+: the uint8 input op cuts at once
    assert old.cut_index == 0 and "runtime 13+" in old.cut_reason and not old.tpu_ops
    conv = next(op for op in graph.ops if op.name == "CONV_2D")
    newer = dataclasses.replace(graph, ops=tuple(dataclasses.replace(op, version=MAX_OP_VERSION["CONV_2D"] + 1)
                                                 if op is conv else op for op in graph.ops))
    mapping = map_graph(newer, 14, facts)
    assert mapping.cut_index == conv.index and "Operation version not supported" in mapping.cut_reason
    assert EDGETPU_OPS["SOFTMAX"].constraints and EDGETPU_OPS["TRANSPOSE"].min_runtime == 14


def test_log_parser_fully_mapped_fixture():
    log = parse_compiler_log((FIXTURES / "fully_mapped.log").read_text())
    assert log.compiler_version == "16.0.384591198" and log.succeeded and log.compile_ms == 212
    assert log.tpu_ops == log.total_ops == 9 and log.cpu_ops == 0 and log.edgetpu_subgraphs == 1
    assert log.on_chip_bytes == round(42.25 * 1024) and log.off_chip_bytes == 0
    assert [r.name for r in log.operators][:2] == ["QUANTIZE", "CONV_2D"] and all(r.mapped for r in log.operators)


def test_log_parser_partial_fixture_with_streaming():
    log = parse_compiler_log((FIXTURES / "partial_streamed.log").read_text())
    assert (log.tpu_ops, log.cpu_ops, log.total_ops) == (22, 4, 26)
    assert (log.reported_tpu_ops, log.reported_cpu_ops) == (22, 4)
    assert log.off_chip_bytes == parse_size("5.44MiB") > 0 and log.on_chip_bytes == parse_size("7.31MiB")
    assert log.on_chip_remaining_bytes == 192 * 1024
    cpu = {(r.name, r.status) for r in log.cpu_rows()}
    assert ("LEAKY_RELU", "Operation not supported") in cpu
    assert ("SOFTMAX", "More than one subgraph is not supported") in cpu
    assert log.to_dict()["cpu_ops"] == 4


def test_log_parser_failure_and_sizes():
    log = parse_compiler_log("Edge TPU Compiler version 16.0.384591198\n"
                             "Started a compilation timeout timer of 180 seconds.\n"
                             "ERROR: Didn't find op for builtin opcode 'CONV_2D' version '6'\n"
                             "Compilation failed: Model failed in Tflite interpreter.\n"
                             "Compilation child process completed within timeout period.\nCompilation failed!\n")
    assert log.succeeded is False and log.tpu_ops is None and "version '6'" in log.errors[0]
    assert parse_size("0.00B") == 0 and parse_size("80.00KiB") == 81920 and parse_size("1.5MB") == 1_500_000
    with pytest.raises(ValueError):
        parse_size("lots")


def test_weight_bits_1_is_refused_on_coral_usb(tmp_path):
    result = run(["export", "--demo", "--target", "edgetpu", "--profile", "coral-usb", "--weight-bits", "1",
                  "--out", str(tmp_path / "b")])
    assert result.exit_code == 2 and "1-bit weights make no sense on profile coral-usb" in result.stderr
    assert not (tmp_path / "b").exists()


def test_require_compiled_refuses_without_compiler(bundles, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    _, out = bundles["coral-usb"]
    data = (out / "model.tflite").read_bytes()
    target = get_target("edgetpu")
    artifacts = Artifacts(tflite=data, graph=Graph.from_bytes(data), profile=load_profile("coral-usb"), mode="int8",
                          options=target.parse_options({"require_compiled": True}))
    with pytest.raises(PreflightError, match="edgetpu_compiler not found") as err:
        target.measure(artifacts)
    assert err.value.exit_code == 4
    result = run(["export", "--demo", "--target", "edgetpu", "--require-compiled", "--out", str(tmp_path / "b")])
    assert result.exit_code == 4 and "--require-compiled: edgetpu_compiler not found" in result.stderr
    assert not (tmp_path / "b").exists()
    result = run(["export", "--demo", "--target", "android", "--require-compiled", "--out", str(tmp_path / "a")])
    assert result.exit_code == 2 and "require_compiled: unknown key" in result.stderr


def test_compiled_bundle_with_a_stand_in_compiler(tmp_path, monkeypatch, demo):
    """A stand-in `edgetpu_compiler` on PATH (it copies the model and prints a real-format log): edgex runs it
    with -s -m 14 -o, reads its log and bundles model_edgetpu.tflite and edgetpu/compile.log."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "edgetpu_compiler"
    script.write_text(f"""#!{sys.executable}
import shutil, sys
from pathlib import Path
args = sys.argv[1:]
assert args[:3] == ["-s", "-m", "14"] and args[3] == "-o", args
out, model = Path(args[4]), Path(args[5])
shutil.copy(model, out / "model_edgetpu.tflite")
log = Path({str(FIXTURES / "fully_mapped.log")!r}).read_text()
(out / "model_edgetpu.log").write_text(log[log.index("Operator"):])
print(log)
""")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    report = exporter.export(demo=True, target="edgetpu", out=tmp_path / "b", progress=False)
    m, out = report.measurements, tmp_path / "b"
    assert m["compiled"].value == 1 and m["tpu_ops"].source == "measured" and m["tpu_ops"].value == 9
    assert m["param_on_chip"].value == round(42.25 * 1024) and m["param_on_chip"].on.startswith("edgetpu_compiler")
    assert (out / "model_edgetpu.tflite").is_file() and not (out / "edgetpu" / "COMPILE.md").exists()
    assert "Operator                       Count      Status" in (out / "edgetpu" / "compile.log").read_text()
    mapping = json.loads((out / "edgetpu" / "mapping.json").read_text())
    assert mapping["compiled"] and mapping["compiler_log"]["compiler_version"] == "16.0.384591198"
    assert not any("not found on PATH" in n for n in report.notes)
    assert np.isfinite(m["latency"].value)
