"""Reading benchmark_model's output (exporter/hil/benchmark_log.py) from fixtures in its real format
(tests/hil/fixtures/benchmark_model/, whose README cites the LiteRT sources), and the tool's checks
and flags (exporter/hil/benchmark_binary.py)."""
from __future__ import annotations

import json
import shutil

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.errors import DeviceError, ExporterError, UsageError
from exporter.hil.benchmark_binary import DELEGATE_FLAGS, benchmark_argv, check_binary
from exporter.hil.benchmark_log import parse_benchmark_output
from exporter.hil.result import parse_agent_output
from exporter.hil.transports.base import RunPlan
from tests.hil.benchmark_stand_in import FIXTURES
from tests.test_fuzz import DOCUMENTED, budget

SHA = "ab" * 32


def parse(name: str, **kw):
    answer = parse_benchmark_output((FIXTURES / name).read_text(), threads=kw.pop("threads", 1),
                                    delegate=kw.pop("delegate", "xnnpack"), model_sha256=SHA, **kw)
    return answer, parse_agent_output(json.dumps(answer).encode())       # what edgex believes of it


def test_xnnpack_fixture():
    raw, result = parse("xnnpack_4_threads.txt", threads=2)
    lat = result.latency_ms
    assert (lat.p50, lat.mean, lat.runs, lat.p5, lat.p95, lat.min, lat.max) == (0.052, 0.05374, 50, 0.05, 0.063,
                                                                                 0.049, 0.088)
    assert result.threads == 4, "the tool's own `Num threads: [4]` wins over what was asked"
    assert result.init_ms == 3.214 and result.memory_kind == "footprint_delta"
    assert result.model_memory_bytes == round(1.60547 * 1024 * 1024)
    assert [(op.node_type, op.name, op.avg_ms, op.times_called) for op in result.ops] == [
        ("TfLiteXNNPackDelegate", "[digits_cnn/probs/MatMul;digits_cnn/probs/BiasAdd]:7", 0.041, 1),
        ("SOFTMAX", "[StatefulPartitionedCall:0]:6", 0.004, 1)]
    assert "partially executed by the delegate" in raw["device"]["delegate_log"][0]


def test_builtin_cpu_fixture_has_every_op_in_run_order():
    _, result = parse("cpu_1_thread.txt", delegate="cpu")
    assert [op.node_type for op in result.ops] == ["CONV_2D", "CONV_2D", "MAX_POOL_2D", "RESHAPE", "FULLY_CONNECTED",
                                                   "FULLY_CONNECTED", "SOFTMAX"]
    assert [int(op.name.rsplit(":", 1)[1]) for op in result.ops] == list(range(7))
    assert abs(result.ops[-1].cdf_percent - 100) < 0.01 and abs(sum(op.percent for op in result.ops) - 100) < 0.01
    assert result.latency_ms.p50 == 0.147 and result.delegate == "cpu" and result.threads == 1


def test_logcat_lines_and_spaces_for_tabs_are_read_too():
    text = (FIXTURES / "xnnpack_4_threads.txt").read_text().replace("\t", "    ")
    text = "\n".join(f"07-08 15:33:56.256 I/tflite  ( 5395): {line[6:]}" if line.startswith("INFO: count=") else line
                     for line in text.splitlines())
    answer = parse_benchmark_output(text, threads=4, delegate="xnnpack", model_sha256=SHA)
    assert answer["latency_ms"]["p50"] == 0.052 and len(answer["ops"]) == 2


@pytest.mark.parametrize("text, message", [
    ((FIXTURES / "old_without_percentiles.txt").read_text(), "no median"),
    ("INFO: STARTING!\nINFO: count=3 first=1 curr=1 min=1 max=1 avg=1 std=0 p5=1 median=1 p95=1\n",
     "did not finish"),
    ("INFO: STARTING!\nERROR: Failed to allocate tensors!\nINFO: Inference timings in us: Init: 5\n",
     r"no statistics .*Failed to allocate tensors"),
])
def test_unusable_output_is_a_device_error(text, message):
    with pytest.raises(DeviceError, match=message) as info:
        parse_benchmark_output(text, threads=1, delegate="xnnpack", model_sha256=SHA)
    assert info.value.exit_code == 5


@budget(40)
@given(text=st.text(max_size=400) | st.lists(st.sampled_from(
    (FIXTURES / "xnnpack_4_threads.txt").read_text().splitlines()), max_size=40).map("\n".join))
def test_any_output_parses_or_is_refused(text):
    """Whatever the tool printed: an answer edgex validates, or a documented exit code; never a crash."""
    try:
        parse_agent_output(json.dumps(parse_benchmark_output(text, threads=1, delegate="cpu",
                                                             model_sha256=SHA)).encode())
    except ExporterError as exc:
        assert exc.exit_code in DOCUMENTED


def test_flags_follow_the_plan_and_the_delegate():
    for delegate, flags in DELEGATE_FLAGS.items():
        argv = benchmark_argv("./benchmark_model", "model.tflite", RunPlan(warmup=3, runs=7, threads=2,
                                                                            delegate=delegate, timeout=60))
        assert argv[1:] == ["--graph=model.tflite", "--num_threads=2", "--warmup_runs=3", "--warmup_min_secs=0",
                            "--num_runs=7", "--min_secs=0", "--max_secs=60", "--enable_op_profiling=true", *flags]


def test_binary_checks(tmp_path):
    elf = shutil.which("true")                          # an x86-64 ELF executable on this machine
    script = tmp_path / "wrapper"
    script.write_text("#!/bin/sh\n")
    assert check_binary(script, ["arm64-v8a"]) == "#! script"
    assert check_binary(elf, ["x86_64"]).startswith("ELF x86-64, 64-bit")
    with pytest.raises(UsageError, match=r"ELF x86-64, 64-bit executable, which this phone cannot run \(its ABIs: "
                                         r"arm64-v8a, armeabi-v7a\).*android_aarch64_benchmark_model"):
        check_binary(elf, ["arm64-v8a", "armeabi-v7a"])
    (tmp_path / "notes.txt").write_text("not a program")
    for path, message in ((tmp_path / "missing", "No such file"), (tmp_path / "notes.txt", "not an executable"),
                          (tmp_path, "not a regular file")):
        with pytest.raises(UsageError, match=message) as info:
            check_binary(path, ["arm64-v8a"])
        assert info.value.exit_code == 2
