"""A stock Android phone over adb (exporter/hil/phone_run.py): the stub adb server of tests/hil/adb_stub.py,
whose shell has no Python and whose getprop answers as an arm64 Android 14 phone, and a stand-in
benchmark_model (tests/hil/benchmark_stand_in.py, a sh script printing the tool's real output format)."""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

pytestmark = pytest.mark.timeout(180)

from exporter.errors import ConfigError
from exporter.hil.agent_files import AGENT_SOURCE
from exporter.hil.runner import hil_run
from exporter.hil.transports.base import RunPlan, TransportOptions
from exporter.profile import PROFILE_DIR
from tests.hil.benchmark_stand_in import write_stand_in
from tests.test_cli import run as cli
from tests.test_fuzz import budget

PHONE_ON = "adb device emulator-5554 (Stub, arm64-v8a, Android 14 (SDK 34); LiteRT benchmark_model sha256 "


@pytest.fixture(scope="module")
def four_threads(demo, tmp_path_factory):
    """The demo exported for android with a profile of `threads: 4` (read-only: tests copy it)."""
    import exporter

    root = tmp_path_factory.mktemp("four-threads")
    text = (PROFILE_DIR / "android-arm64-midrange.yaml").read_text()
    assert text.count("\nthreads: 1 ") == 1
    (root / "phone4.yaml").write_text(text.replace("\nthreads: 1 ", "\nthreads: 4 "))
    exporter.export(demo=True, target="android", profile=root / "phone4.yaml", out=root / "bundle", progress=False)
    return root / "bundle"


@pytest.fixture
def phone(adb_server, tmp_path, monkeypatch):
    """A stub phone with its /data/local/tmp under tmp_path/device; returns (server, device dir)."""
    def start(**kw):
        device = tmp_path / "device"
        device.mkdir(exist_ok=True)
        server = adb_server([("emulator-5554", "device")], device_root=device, **kw)
        monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", str(server.port))
        return server, device
    return start


def _copy(bundle: Path, tmp_path: Path) -> Path:
    shutil.copytree(bundle, tmp_path / "bundle")
    return tmp_path / "bundle"


def _python_lines(server) -> list[str]:
    return [c for c in server.shell_commands() if "python" in c]


def test_stock_phone_is_measured_by_benchmark_model(phone, four_threads, tmp_path):
    server, device = phone()
    bundle, tool = _copy(four_threads, tmp_path), write_stand_in(tmp_path / "benchmark_model")
    run = hil_run(bundle, "adb://emulator-5554", RunPlan(warmup=5, runs=20),
                  TransportOptions(connect_timeout=5, benchmark_binary=tool))
    assert run.complete and run.passed and run.plan["threads"] == 4 and run.plan["delegate"] == "xnnpack"
    latency, ram, init = run.measurements["latency"], run.measurements["ram"], run.measurements["init_time"]
    assert latency.value == 0.052 and latency.source == "measured" and latency.on.startswith(PHONE_ON)
    assert latency.note.startswith("p50 of 50 invokes, 4 threads, delegate xnnpack; mean 0.054 ms")
    assert ram.value == round(1.60547 * 1024 * 1024) and "peak memory footprint growth" in ram.note
    assert init.value == 3.214 and run.estimates["ram"]["measured"] == ram.value
    assert [op["node_type"] for op in run.result["ops"]] == ["TfLiteXNNPackDelegate", "SOFTMAX"]
    assert run.device["model"] == "Stub" and run.device["abi"] == "arm64-v8a" and "#! script" in run.device["tool"]
    stored = json.loads(Path(run.path).read_text())
    assert stored["run_format"] == 2 and stored["result"]["ops"][0]["avg_ms"] == 0.041
    commands = server.shell_commands()
    ran = [c for c in commands if "./benchmark_model " in c]
    assert len(ran) == 1 and all(flag in ran[0] for flag in (
        "--graph=model.tflite", "--num_threads=4", "--warmup_runs=5", "--num_runs=20", "--enable_op_profiling=true",
        "--use_xnnpack=true"))
    assert any("chmod 755 " in c and commands.index(c) < commands.index(ran[0]) for c in commands)
    assert _python_lines(server) == [] and not any("edgex_agent" in c for c in commands), "no Python was started"
    assert sorted(Path(p).name for p, _ in server.pushed) == ["benchmark_model.part", "model.tflite.part"]
    assert list(device.iterdir()) == [], "the model and the tool are removed"


def test_accuracy_without_python_is_skipped_with_the_reason(phone, hil_bundle, tmp_path):
    server, device = phone()
    tool = write_stand_in(tmp_path / "benchmark_model", "cpu_1_thread.txt")
    run = hil_run(_copy(hil_bundle, tmp_path), "adb://emulator-5554", RunPlan(warmup=2, runs=10, eval_samples=50),
                  TransportOptions(connect_timeout=5, benchmark_binary=tool))
    check = {c.name: c for c in run.checks}["accuracy_drop"]
    assert check.status == "skip" and check.note.startswith("accuracy not measured on the device: python3 not found")
    assert run.measurements["latency"].note.startswith("p50 of 50 invokes, 1 thread, delegate cpu")
    assert "the profile asks for delegate xnnpack; LiteRT benchmark_model ran cpu" in run.notes, \
        "the tool's own `Use xnnpack: [0]` wins (this stand-in prints the cpu fixture whatever its flags)"
    assert _python_lines(server) == ["( command -v python3 >/dev/null 2>&1 ); s=$?; echo; echo EDGEX-EXIT:$s"]
    assert list(device.iterdir()) == []


def test_phone_with_python_scores_accuracy_with_the_installed_agent(phone, hil_bundle, tmp_path):
    python3 = tmp_path / "python3"                   # the phone's Python: this machine's venv, by a wrapper
    python3.write_text(f"#!/bin/sh\nexec {sys.executable} \"$@\"\n")
    python3.chmod(0o755)
    server, device = phone(extra_tools={"python3": str(python3)})
    tool = write_stand_in(tmp_path / "benchmark_model")
    run = hil_run(_copy(hil_bundle, tmp_path), "adb://emulator-5554", RunPlan(warmup=2, runs=10, eval_samples=50),
                  TransportOptions(connect_timeout=5, benchmark_binary=tool))
    assert run.passed and run.measurements["accuracy_drop"].source == "measured" and run.result["eval_samples"] == 50
    assert run.measurements["ram"].note.startswith("the model's own memory: benchmark_model's")
    assert any("accuracy scored on the device by the Python agent" in n for n in run.notes)
    agent = [sha for path, sha in server.pushed if Path(path).name == "edgex_agent.py.part"]
    assert agent == [hashlib.sha256(AGENT_SOURCE.read_bytes()).hexdigest()]
    assert list(device.iterdir()) == []


def test_no_tool_and_no_python_says_where_the_tool_comes_from(phone, hil_bundle, tmp_path):
    server, device = phone()
    result = cli(["hil", "run", str(_copy(hil_bundle, tmp_path)), "--device", "adb://emulator-5554", "--runs", "5"])
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    assert "(Stub, arm64-v8a) has no Python to run the edgex agent (python3 not found)" in result.stderr
    assert "--benchmark-binary PATH" in result.stderr and "edgex hil config --benchmark-binary arm64-v8a=PATH" in \
        result.stderr and "android_aarch64_benchmark_model" in result.stderr
    assert list(device.iterdir()) == []


@pytest.mark.parametrize("kind, code, message", [
    ("missing", 2, r"--benchmark-binary .*missing: No such file or directory"),
    ("text", 2, r"--benchmark-binary .*notes.txt is not an executable"),
    ("x86-64", 2, r"is an ELF x86-64, 64-bit executable, which this phone cannot run \(its ABIs: arm64-v8a, "
                  r"armeabi-v7a, armeabi\)"),
    ("cannot-execute", 5, r"could not execute benchmark_model \(#! script, exit 127"),
    ("old-tool", 5, r"no median"),
])
def test_a_bad_tool_is_a_clear_error(phone, hil_bundle, tmp_path, kind, code, message):
    server, device = phone()
    tools = {"missing": tmp_path / "missing", "text": tmp_path / "notes.txt", "x86-64": Path(shutil.which("true")),
             "cannot-execute": tmp_path / "no-interpreter", "old-tool": tmp_path / "old"}
    (tmp_path / "notes.txt").write_text("not a program\n")
    (tmp_path / "no-interpreter").write_text("#!/nonexistent/sh\n")
    write_stand_in(tmp_path / "old", "old_without_percentiles.txt")
    result = cli(["hil", "run", str(_copy(hil_bundle, tmp_path)), "--device", "adb://emulator-5554", "--runs", "5",
                  "--benchmark-binary", str(tools[kind])])
    assert result.exit_code == code, result.stderr
    assert "Traceback" not in result.stderr
    assert re.search(message, result.stderr), result.stderr
    assert list(device.iterdir()) == [] and not (tmp_path / "bundle" / "hil").exists()
    if kind in ("missing", "text"):
        assert server.requests == [], "refused before connecting"


def test_benchmark_binary_is_for_phones_only(hil_bundle, tmp_path):
    result = cli(["hil", "run", str(hil_bundle), "--device", "local", "--benchmark-binary", sys.executable])
    assert result.exit_code == 2 and "--benchmark-binary is for Android phones (adb://SERIAL)" in result.stderr


def test_the_config_remembers_a_tool_per_abi(phone, hil_bundle, tmp_path, monkeypatch):
    server, device = phone()
    tool = write_stand_in(tmp_path / "android_aarch64_benchmark_model")
    monkeypatch.chdir(tmp_path)
    result = cli(["hil", "config", "--benchmark-binary", "arm64-v8a=android_aarch64_benchmark_model"])
    assert result.exit_code == 0, result.stderr
    shown = cli(["hil", "config"])
    assert f"benchmark_binary arm64-v8a: {tool}" in shown.stdout
    result = cli(["hil", "run", str(_copy(hil_bundle, tmp_path)), "--device", "adb://emulator-5554", "--runs", "10",
                  "--warmup", "1"])
    assert result.exit_code == 0, result.stderr
    assert "slowest ops of 2" in result.stdout and "TfLiteXNNPackDelegate" in result.stdout
    assert any("./benchmark_model --graph=model.tflite --num_threads=1" in c for c in server.shell_commands())
    for bad, message in (("mips=tool", "unknown ABI"), ("arm64-v8a", "expected ABI=PATH"),
                         (f"x86_64={shutil.which('true')}", None)):
        result = cli(["hil", "config", "--benchmark-binary", bad])
        assert (result.exit_code, "Traceback" in result.stderr) == ((0, False) if message is None else (2, False))
        assert message is None or message in result.stderr


def test_an_invalid_config_is_refused_naming_the_file(phone, hil_bundle, tmp_path):
    from exporter.hil.user_config import read_config

    server, _ = phone()
    config = Path(os.environ["XDG_CONFIG_HOME"]) / "edgex" / "config.yaml"
    config.parent.mkdir(parents=True)
    config.write_text("benchmark_binaries: {arm64-v8a: /x}\n")
    with pytest.raises(ConfigError, match="benchmark_binaries") as info:
        read_config()
    assert str(config) in str(info.value)
    result = cli(["hil", "run", str(hil_bundle), "--device", "adb://emulator-5554", "--runs", "5"])
    assert result.exit_code == 2 and str(config) in result.stderr and "Traceback" not in result.stderr


def test_the_agent_runs_on_the_profiles_threads_and_delegate(hil_bundle, tmp_path):
    """Without benchmark_model (a local device), the agent honours threads, and says what it could not."""
    run = hil_run(_copy(hil_bundle, tmp_path), "local", RunPlan(warmup=2, runs=10, threads=2, delegate="gpu"),
                  TransportOptions(python=sys.executable))
    assert run.result["threads"] == 2 and run.result["delegate"] == "xnnpack"
    assert run.measurements["latency"].note.startswith("p50 of 10 invokes, 2 threads, delegate xnnpack")
    assert any("the profile asks for delegate gpu; ai_edge_litert ran xnnpack" in n for n in run.notes)
    ram = run.measurements["ram"]
    assert ram.note.startswith("the model's own memory: resident memory after loading and invoking it")
    assert 0 < ram.value < run.result["peak_rss_bytes"] and run.result["memory_kind"] == "rss_delta"
    assert ram.value < 64 << 20, "the model's cost, not the interpreter's"



def test_runs_from_before_run_format_2_stay_readable(phone, four_threads, tmp_path):
    """A stored run without `run_format` (written by an earlier edgex: one thread, no ops) is reported beside a
    new one; each latency says its threads."""
    from tests.hil.test_run_files import GOOD

    server, _ = phone()
    bundle = _copy(four_threads, tmp_path)
    hil_run(bundle, "adb://emulator-5554", RunPlan(warmup=1, runs=10),
            TransportOptions(connect_timeout=5, benchmark_binary=write_stand_in(tmp_path / "benchmark_model")))
    (bundle / "hil" / "0-old.json").write_text(json.dumps(GOOD))
    result = cli(["hil", "report", str(bundle)])
    assert result.exit_code == 0, result.stderr
    assert "1.500 ms (1 thr.)" in result.stdout and "0.052 ms (4 thr.)" in result.stdout
    result = cli(["hil", "report", str(bundle), "--json"])
    assert [r.get("run_format") for r in json.loads(result.stdout)] == [None, 2]


@budget(30)
@given(raw=st.binary(max_size=300) | st.sampled_from([b"benchmark_binary: {arm64-v8a: /x}\n",
                                                        b"benchmark_binary: {arm64-v8a: [1]}\n",
                                                        b"benchmark_binary: &a {x86: *a}\n", b"- 1\n- 2\n"]))
def test_any_config_file_is_read_or_refused(raw):
    """The config comes from outside: whatever its bytes, a dict of known ABIs or exit 2 naming the file."""
    from exporter.hil.user_config import config_path, read_config

    config_path().parent.mkdir(parents=True, exist_ok=True)
    config_path().write_bytes(raw)
    try:
        data = read_config()
    except ConfigError as exc:
        assert exc.exit_code == 2 and str(config_path()) in str(exc)
    else:
        assert set(data) == {"benchmark_binary"} and all(isinstance(v, str) for v in data["benchmark_binary"].values())
