"""What a search leaves in --out: the pick as a verified bundle that records its study and trial, the report,
the plot, each Pareto point's recipe YAML; written in one step and only over an earlier search's output.

Most tests build an OptimizeResult by hand (the trials' figures are made up; the pick is really exported on
the demo: an int8 export without stages, a few seconds). The last ones read the real `--trials 12` demo run
of tests/optimize/conftest.py (`optimize_run`).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import exporter
from exporter.errors import ConfigError, LimitError, UsageError
from exporter.optimize.job import OptimizeJob
from exporter.optimize.objectives import Objective
from exporter.optimize.plan import TrialPlan, TrialResult
from exporter.optimize.result import OptimizeResult
from exporter.optimize.results import FORMAT, check_out, write
from exporter.recipe import load_recipe
from tests.test_cli import run

OBJECTIVES = [Objective("accuracy", "accuracy", "maximize", "%"), Objective("size", "gzip_size", "minimize", "bytes")]
PRUNE = {"type": "prune", "config": {"sparsity": 0.5}}


def _result(feasible: bool = True) -> OptimizeResult:
    """Four trials: 0 and 1 on the front (1 the smallest), 2 dominated, 3 failed; none feasible when not `feasible`."""
    ok = -0.2 if feasible else 0.3
    broken = {} if feasible else {"model_size": {"measured": 13000, "limit": 10000, "unit": "bytes"}}
    trials = [TrialResult(0, "complete", [98.5, 40000.0], [ok], dict(broken)),
              TrialResult(1, "complete", [97.9, 30000.0], [ok], dict(broken)),
              TrialResult(2, "complete", [97.0, 45000.0], [ok], dict(broken)),
              TrialResult(3, "failed", error="TFLite conversion failed: boom")]
    plans = {0: TrialPlan(0, {"prune": 0.5}, {"stages": [PRUNE], "training": {"epochs": 1}}, "int8"),
             1: TrialPlan(1, {"prune": "none"}, {"stages": []}, "int8"),
             2: TrialPlan(2, {"prune": "none", "quantize": "float16"}, {"stages": []}, "float16"),
             3: TrialPlan(3, {"prune": 0.9}, {"stages": [PRUNE]}, "int8")}
    sensitivity = [{"layer": "conv2d_1", "class": "Conv2D", "params": 4640, "drop_pruned": 12.5,
                    "drop_clustered": 3.0, "score": 15.5}]
    return OptimizeResult(study="edgex-android-test", storage="sqlite:///x.study.db", trials=trials, new_trials=4,
                          objectives=OBJECTIVES, sensitivity=sensitivity, plans=plans, target="android")


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """The results of `_result()` written once (the pick, trial 1, exported on the demo)."""
    out = tmp_path_factory.mktemp("results") / "opt"
    result = write(out, _result(), OptimizeJob(target="android", demo=True))
    return result, out


def test_the_pick_is_a_verified_bundle_that_records_its_trial(written):
    result, out = written
    assert [t.number for t in result.pareto] == [1, 0] and result.pick.number == 1
    assert result.bundle == str(out / "bundle")
    verified = run(["verify", str(out / "bundle")])
    assert verified.exit_code == 0, verified.stderr
    manifest = json.loads((out / "bundle" / "manifest.json").read_text())
    assert manifest["optimize"] == {"study": "edgex-android-test", "storage": "sqlite:///x.study.db", "trial": 1,
                                    "params": {"prune": "none"}}
    assert manifest["status"] == "pass" and manifest["recipe"]["convert"]["mode"] == "int8"


def test_results_files(written):
    result, out = written
    data = json.loads((out / "optimize.json").read_text())
    assert data["format"] == FORMAT and data["pick_rule"] == "smallest" and data["pick_status"] == "pass"
    assert [t["number"] for t in data["pareto"]] == [1, 0] and data["pick"]["number"] == 1
    assert sorted(data["files"]) == ["optimize.json", "pareto.png", "pareto/trial-0000.yaml",
                                     "pareto/trial-0001.yaml", "report.html"]
    assert sorted(p.name for p in out.iterdir()) == ["bundle", "optimize.json", "pareto", "pareto.png", "report.html"]
    assert (out / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    page = (out / "report.html").read_text()
    for text in ("Pareto front", "conv2d_1", "TFLite conversion failed: boom", "1 (pick)", "data:image/png"):
        assert text in page
    recipe = load_recipe(out / "pareto" / "trial-0000.yaml")          # what `edgex export --recipe FILE` reads
    assert recipe.quantize == "int8" and [s.type for s in recipe.stages] == ["prune"]
    assert (out / "pareto" / "trial-0000.yaml").read_text().startswith(
        "# edgex optimize: trial 0 of study edgex-android-test (on the Pareto front)\n# measured: accuracy 98.50 %")
    assert not [n for n in os.listdir(out.parent) if n.startswith(".edgex-tmp")]


def test_no_passing_trial_exits_1_and_replaces_the_results(tmp_path):
    out = tmp_path / "opt"
    write(out, _result(), OptimizeJob(target="android", demo=True))
    assert (out / "bundle" / "manifest.json").is_file()
    with pytest.raises(LimitError) as caught:
        write(out, _result(feasible=False), OptimizeJob(target="android", demo=True))
    assert caught.value.exit_code == 1
    assert "closest is trial 1 (int8), which breaks model_size 13,000 B > 10,000 B" in str(caught.value)
    data = json.loads((out / "optimize.json").read_text())
    assert data["pareto"] == [] and data["pick"] is None and data["bundle"] is None
    assert not (out / "bundle").exists() and "No trial passes every limit" in (out / "report.html").read_text()


def test_a_pick_that_breaks_a_limit_when_exported_again_exits_1(tmp_path):
    out = tmp_path / "opt"
    with pytest.raises(LimitError, match=r"trial 1 passed in the search, but .* breaks model_size .* > 1,000 B"):
        write(out, _result(), OptimizeJob(target="android", demo=True, limits={"model_size": "1KB"}))
    assert json.loads((out / "bundle" / "manifest.json").read_text())["status"] == "fail"
    assert json.loads((out / "optimize.json").read_text())["pick_status"] == "fail"


def test_hil_runs_of_the_old_bundle_are_carried_over(tmp_path):
    out = tmp_path / "opt"
    write(out, _result(), OptimizeJob(target="android", demo=True))
    run_file = out / "bundle" / "hil" / "20260101-000000.json"
    run_file.parent.mkdir()
    run_file.write_text('{"run": 1}')
    write(out, _result(), OptimizeJob(target="android", demo=True))
    assert run_file.read_text() == '{"run": 1}'
    assert run(["verify", str(out / "bundle")]).exit_code == 0


def _tree(path: Path) -> dict:
    return {str(p.relative_to(path)): p.read_bytes() if p.is_file() else None for p in sorted(path.rglob("*"))}


def test_refuses_what_is_not_an_optimize_output(written, tmp_path):
    _, out = written
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(UsageError, match="not an edgex optimize output"):
        write(other, _result(), OptimizeJob(target="android", demo=True))
    (tmp_path / "afile").write_text("x")
    with pytest.raises(UsageError, match="not a folder"):
        check_out(tmp_path / "afile")
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "optimize.json").write_text('{"format": "someone-else", "files": []}')
    with pytest.raises(UsageError, match='not tagged "format": "edgex-optimize"'):
        check_out(fake)
    before = _tree(out)
    (out / "mine.txt").write_text("added")
    try:
        with pytest.raises(UsageError, match="files that are not part of it: mine.txt"):
            check_out(out)
    finally:
        (out / "mine.txt").unlink()
    assert _tree(out) == before and (other / "notes.txt").read_text() == "keep me"
    assert check_out(tmp_path / "new" / "opt") == tmp_path / "new" / "opt"


def test_a_failing_pick_export_leaves_the_old_results_untouched(written, tmp_path):
    _, out = written
    before = _tree(out)
    bad = _result()
    bad.plans[1] = TrialPlan(1, {}, {"stages": [{"type": "no-such-stage"}]}, "int8")
    with pytest.raises(ConfigError):
        write(out, bad, OptimizeJob(target="android", demo=True))
    assert _tree(out) == before
    assert not [n for n in os.listdir(out.parent) if n.startswith(".edgex-tmp")]


def test_provenance_is_checked_before_any_work(tmp_path):
    for bad in ({"search": {}}, {"optimize": 3}, {"optimize": {"x": object()}}, ["optimize"]):
        with pytest.raises(UsageError, match="provenance="):
            exporter.export(demo=True, out=tmp_path / "b", progress=False, provenance=bad)
    assert not (tmp_path / "b").exists()


# -- the real search of tests/optimize/conftest.py ----------------------------------------------------------


def test_real_search_results(optimize_run):
    result, out = optimize_run
    data = json.loads((out / "optimize.json").read_text())
    assert data["format"] == FORMAT and data["pareto"] and data["pick"]["number"] == result.pick.number
    assert {f"pareto/trial-{t.number:04d}.yaml" for t in result.pareto} <= set(data["files"])
    manifest = json.loads((out / "bundle" / "manifest.json").read_text())
    assert manifest["optimize"]["study"] == result.study and manifest["optimize"]["trial"] == result.pick.number
    assert manifest["optimize"]["params"] == result.plans[result.pick.number].params
    assert run(["verify", str(out / "bundle")]).exit_code == 0
    page = (out / "report.html").read_text()
    assert page.count("<tr>") >= len(result.pareto) + len(result.trials) + 2


def test_a_pareto_recipe_exports_with_edgex_export(optimize_run, tmp_path, monkeypatch):
    result, out = optimize_run
    pick = result.plans[result.pick.number]
    monkeypatch.chdir(tmp_path)
    args = ["export", "--demo", "--target", "android", "--recipe", str(out / "pareto" / f"trial-{pick.number:04d}.yaml"),
            "--out", "again", "--bundle-samples", "0"]
    args += ["--no-compress"] if pick.target_options.get("compress") is False else []
    exported = run(args)
    assert exported.exit_code == 0, exported.stderr
    again = json.loads(Path("again/manifest.json").read_text())["recipe"]
    picked = json.loads((out / "bundle" / "manifest.json").read_text())["recipe"]
    assert again["stages"] == picked["stages"] and again["convert"] == picked["convert"]
