"""Readable output (issue 11, item 5): one line per stage for skipped layers, the same tables in
report.md and report.html, status lines in the order the work happens, plain progress lines off a
terminal, `profiles show` with units and sources, stage configs as `key: value` text."""
import io
import json
import re
import time

import numpy as np
import pytest

import exporter
from exporter import progress
from exporter.config_text import config_inline, config_lines
from exporter.option_names import calling
from exporter.report_html import render_html
from exporter.steps import skipped_note
from tests.test_cli import run

N_BN = 6


@pytest.fixture(scope="module")
def bn_model(keras):
    """A conv net with many BatchNormalization layers, which prune leaves alone."""
    keras.utils.set_random_seed(2)
    layers = [keras.layers.Input((8, 8, 1))]
    for i in range(N_BN):
        layers += [keras.layers.Conv2D(4, 3, padding="same", name=f"conv{i}"),
                   keras.layers.BatchNormalization(name=f"bn{i}")]
    layers += [keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax", name="head")]
    return keras.Sequential(layers)


@pytest.fixture(scope="module")
def pruned(bn_model, tmp_path_factory):
    """A prune export of `bn_model` with progress on, its stderr captured: (report, bundle, stderr text)."""
    rng = np.random.default_rng(0)
    x, y = rng.random((64, 8, 8, 1), dtype=np.float32), rng.integers(0, 3, 64)
    out = tmp_path_factory.mktemp("bn") / "bundle"
    stream = io.StringIO()
    mp = pytest.MonkeyPatch()
    mp.delenv("EDGEX_NO_PROGRESS", raising=False)
    mp.setattr(progress, "_stderr", lambda: stream)
    try:
        report = exporter.export(bn_model, train=(x, y), eval=(x, y), quantize="float32", out=out, progress=True,
                                 recipe={"stages": [{"type": "prune", "config": {"sparsity": 0.5, "frequency": 1}}],
                                         "training": {"epochs": 1}})
    finally:
        mp.undo()
    return report, out, stream.getvalue()


# a. skipped layers: one line per stage, the full list in the report

def test_skipped_note_counts_classes_for_many_layers():
    skipped = ([{"layer": f"bn{i}", "class": "BatchNormalization", "reason": "no weights to prune"}
                for i in range(35)] + [{"layer": f"dw{i}", "class": "DepthwiseConv2D"} for i in range(17)]
               + [{"layer": f"r{i}", "class": c} for i, c in enumerate(["ReLU"] * 10 + ["Add"] * 7)])
    assert skipped_note("prune", skipped) == ("prune: skipped 69 layers (BatchNormalization ×35, "
                                              "DepthwiseConv2D ×17, ReLU ×10, …); "
                                              "the recipe's skip_layers to choose")
    with calling("cli"):
        assert skipped_note("prune", skipped[:1]) == ("prune: skipped 1 layer (bn0: BatchNormalization, "
                                                      "no weights to prune); --skip-layer to choose")


def test_many_skipped_layers_are_one_note_and_all_in_the_report(pruned):
    report, out, err = pruned
    prune_notes = [n for n in report.notes if n.startswith("prune:")]
    assert prune_notes == [n for n in prune_notes if "BatchNormalization ×6" in n] and len(prune_notes) == 1
    assert "the recipe's skip_layers to choose" in prune_notes[0]      # exported from Python
    names = [f"bn{i}" for i in range(N_BN)]
    md = (out / "report.md").read_text()
    page = (out / "report.html").read_text()
    for name in names:
        assert re.search(rf"\| prune \| {name} \| BatchNormalization \|", md), name
        assert f"<td>{name}</td>" in page, name
    skipped = json.loads((out / "manifest.json").read_text())["stages"][1]["skipped"]
    assert set(names) <= {s["layer"] for s in skipped}


# b. report.html has report.md's tables

def test_html_has_the_op_and_io_tables_of_the_markdown(demo_bundle):
    report, out = demo_bundle
    md = report.to_markdown()
    page = render_html(report)
    assert "### Inputs and outputs" in md and "### Ops" in md
    assert "<h3>Inputs and outputs</h3>" in page and "<h3>Ops</h3>" in page
    for t in report.graph["inputs"] + report.graph["outputs"]:
        shape = "x".join(map(str, t["shape"]))
        assert f"| {t['name']} | {shape} | {t['dtype']} |" in md
        assert f"<td>{t['name']}</td><td>{shape}</td><td>{t['dtype']}</td>" in page
    for op in report.graph["ops"]:
        assert f"<td>{op['index']}</td><td>{op['name']}</td><td>{op['compute_dtype']}</td>" in page
    assert "headroom" in page


# c. status lines in the order the work happens

def test_status_lines_follow_the_work(pruned):
    _, _, err = pruned
    lines = [line for line in err.splitlines() if line.startswith("• ")]
    order = ["• measuring the original model", "• stage prune: ", "• stage prune: converting to TFLite",
             "• measuring with LiteRT", "• writing bundle"]
    at = [next(i for i, line in enumerate(lines) if line.startswith(prefix)) for prefix in order]
    assert at == sorted(at), lines
    assert not any(line.startswith("• converting to TFLite") for line in lines[:at[1]]), lines


# d. plain progress lines off a terminal

class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


@pytest.fixture
def plain_stderr(monkeypatch):
    stream = io.StringIO()
    monkeypatch.delenv("EDGEX_NO_PROGRESS", raising=False)
    monkeypatch.setattr(progress, "_stderr", lambda: stream)
    with progress.scoped(enabled=True):
        yield stream


def test_plain_progress_prints_at_most_every_interval_and_at_the_end(plain_stderr):
    clock = FakeClock()
    with progress.progress("fine-tuning (qat)", total=5, clock=clock) as advance:
        for step in (4, 4, 4, 60, 60):          # seconds per epoch
            clock.now += step
            advance()
    assert plain_stderr.getvalue().splitlines() == [
        "fine-tuning (qat): 3/5, elapsed 0:12, ETA 0:08",
        "fine-tuning (qat): 4/5, elapsed 1:12, ETA 0:18",
        "fine-tuning (qat): 5/5, elapsed 2:12",
    ]
    with progress.progress("calibrating", total=None, clock=clock) as advance:
        clock.now += 3
        advance(7)
    assert plain_stderr.getvalue().splitlines()[-1] == "calibrating: 7, elapsed 0:03"     # the end, once


def test_plain_progress_prints_while_a_long_step_runs(plain_stderr):
    with progress.progress("qat", total=2, interval=0.1) as advance:
        time.sleep(0.45)                        # one long epoch: the heartbeat still prints
        advance()
    lines = plain_stderr.getvalue().splitlines()
    assert len(lines) >= 4 and lines[0].startswith("qat: 0/2, elapsed") and lines[-1].startswith("qat: 1/2")


def test_plain_progress_respects_edgex_no_progress(plain_stderr, monkeypatch):
    monkeypatch.setenv("EDGEX_NO_PROGRESS", "1")
    with progress.progress("qat", total=2, interval=0.01) as advance:
        time.sleep(0.05)
        advance()
    assert plain_stderr.getvalue() == ""


# e. profiles show: units and sources

def test_profiles_show_prints_units_and_the_files_comments():
    result = run(["profiles", "show", "android-arm64-midrange"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "  latency: 33 ms  # One frame of a 30 fps camera pipeline (1000 ms / 30)." in lines
    at = lines.index("  ram: 256 MiB")
    assert lines[at - 1] == "  # (ActivityManager.getMemoryClass); we budget the lower end for inference."
    assert "  model_size: 50 MB" in lines
    assert "threads: 1  # LiteRT benchmarks and the anchors above are single-thread figures" in lines
    assert "  runtime_ram_bytes: 4 MiB  # Estimate: LiteRT interpreter, XNNPACK delegate and op resolver heap, ~4 MiB." \
        in lines
    shown = json.loads(run(["profiles", "show", "android-arm64-midrange", "--json"]).output)
    assert shown["limits"]["latency"] == 33 and shown["limits"]["ram"] == 256 * 1024**2


def test_profiles_show_of_a_file_outside_the_shipped_ones(tmp_path):
    from exporter.profile import PROFILE_DIR

    text = (PROFILE_DIR / "stm32h743.yaml").read_text().replace("latency: 50ms", "latency: 40ms  # my own budget")
    (tmp_path / "mine.yaml").write_text(text)
    result = run(["profiles", "show", str(tmp_path / "mine.yaml")])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    at = lines.index("  latency: 40 ms")       # two comments: both above the line, as in the file
    assert lines[at - 2:at] == ["  # edgex budget: 20 inferences per second on a fast MCU.", "  # my own budget"]
    assert "  flash: 2 MiB  # 2 MB of flash (DS12110, section 3.3)." in lines


# f. stage configs as key: value text

def test_stage_configs_are_key_value_text_in_report_md(pruned):
    report, out, _ = pruned
    md = (out / "report.md").read_text()
    config = report.stages[1]["config"]
    assert "### Stage configs" in md
    assert "\n".join(["prune:", "", "```yaml", *config_lines(config), "```"]) in md
    assert "sparsity: 0.5" in md and "{'" not in md and "{\"" not in md


def test_config_text_is_yaml_like():
    assert config_inline({"a": None, "b": True, "c": [1, "x"], "d": {"e": 2}}) == "a: null, b: true, c: [1, x], d: {e: 2}"
    assert config_lines({"a": 1, "d": {"e": 2}, "f": {}}) == ["a: 1", "d:", "  e: 2", "f: {}"]
