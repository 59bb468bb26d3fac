"""The profile's `threads` drives host measurement (LiteRT num_threads) and the cost model; every latency says it."""
import html
import json
import os
import re

import pytest

import exporter
from exporter.analysis.cost_model import estimate_latency_ms, speedup
from exporter.analysis.graph import Graph
from exporter.profile import PROFILE_DIR, load_profile

CORES = len(os.sched_getaffinity(0))


def _profile(tmp_path, base: str, threads: int):
    """A copy of shipped profile `base` with `threads: N`."""
    text = (PROFILE_DIR / f"{base}.yaml").read_text()
    path = tmp_path / f"{base}-{threads}t.yaml"
    path.write_text(re.sub(r"(?m)^threads: 1.*$", f"threads: {threads}", text, count=1))
    assert load_profile(path).threads == threads
    return path


@pytest.fixture(scope="module")
def by_threads(demo, tmp_path_factory):
    """The demo exported for android on its default profile at 1 and at 4 threads: {threads: (report, bundle)}."""
    root = tmp_path_factory.mktemp("threads")
    return {n: (exporter.export(demo=True, profile=_profile(root, "android-arm64-midrange", n), out=root / f"b{n}",
                                progress=False), root / f"b{n}") for n in (1, 4)}


@pytest.mark.parametrize("threads", [1, 4])
def test_every_latency_figure_says_its_thread_count(by_threads, threads):
    report, out = by_threads[threads]
    said = f"{threads} thread" + ("s" if threads > 1 else "")
    manifest = json.loads((out / "manifest.json").read_text())["measurements"]
    latencies = [name for name in report.measurements if "latency" in name]
    assert sorted(latencies) == ["host_latency_p50", "host_latency_p90", "latency"]
    for name in latencies:
        for figure in (report.measurements[name].to_dict(), report.to_dict()["measurements"][name], manifest[name]):
            assert figure["on"].endswith(said) and said in figure["note"], figure
    host = report.measurements["host_latency_p50"].note
    assert f"{said} (LiteRT num_threads={threads}) on {CORES} core" in host
    assert ("more threads than cores" in host) == (threads > CORES)
    markdown, page = (out / "report.md").read_text(), (out / "report.html").read_text()
    assert all(re.search(rf"\| {name} \|[^\n]*{said}", markdown) for name in latencies)
    assert all(html.escape(report.measurements[name].note) in page for name in latencies)


def test_four_threads_divide_the_mac_time_but_not_the_op_overhead(by_threads):
    one, four = by_threads[1][0].measurements["latency"], by_threads[4][0].measurements["latency"]
    graph = Graph.from_file(by_threads[4][1] / "model.tflite")
    cost = load_profile("android-arm64-midrange").cost_model
    overhead = len(graph.ops) * cost.per_op_overhead_us * 1e-3
    assert four.value < one.value
    assert four.value == pytest.approx((one.value - overhead) / speedup(cost, 4) + overhead)
    assert speedup(cost, 4) == pytest.approx(1 + 3 * 0.65) and "MAC time / 2.95" in four.note
    assert estimate_latency_ms(graph, cost, 1) == pytest.approx(one.value)


def test_stage_records_measure_and_estimate_at_the_profiles_threads(by_threads, demo, tmp_path):
    from exporter.model_io import load_model
    from exporter.pipeline import measure_stage
    from exporter.stages.base import StageContext
    from exporter.stages.training import TrainingConfig

    report, out = by_threads[4]
    ctx = StageContext(train=demo.train, eval=demo.eval, training=TrainingConfig(epochs=1), mode="int8",
                       profile=load_profile(_profile(tmp_path, "android-arm64-midrange", 4)))
    record = measure_stage("original", load_model(demo.model_path).model, (out / "model.tflite").read_bytes(), ctx)
    assert record["threads"] == {"est_latency_ms": 4, "host_latency_ms": 4}
    assert record["sources"]["est_latency_ms"].endswith(", 4 threads")
    assert f"4 threads (LiteRT num_threads=4) on {CORES} core" in record["sources"]["host_latency_ms"]
    assert record["est_latency_ms"] == pytest.approx(report.measurements["latency"].value)
    report.stages = [record]
    assert "est. latency at 4 thread(s), host latency LiteRT at 4 thread(s)" in report.to_markdown()
    from exporter.report_html import render_html

    assert "<h2>Stages (latency at 4 / 4 thread(s))</h2>" in render_html(report)


def test_a_microcontroller_estimate_claims_no_cpu_threads(demo, tmp_path):
    out = tmp_path / "mcu"
    report = exporter.export(demo=True, target="microcontroller", out=out, progress=False,
                             profile=_profile(tmp_path, "arduino-nano-33-ble", 4))
    latency = report.measurements["latency"]
    assert latency.note.endswith("TFLM runs on one core: the profile's threads (4) do not apply")
    assert "thread" not in latency.on
    cost = load_profile("arduino-nano-33-ble").cost_model
    assert latency.value == pytest.approx(estimate_latency_ms(Graph.from_file(out / "model.tflite"), cost, 1))
    assert report.measurements["host_latency_p50"].on.endswith("4 threads")    # this host's LiteRT still takes them
