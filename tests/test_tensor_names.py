"""`--strip-names` (a recipe's `strip_names`, exporter/tensor_names.py): the inner tensors' names go, the model
computes the same bits, apps still find its inputs, outputs, signature and metadata, and the search turns it on.

One android export of the demo with and one without are shared (`pair`).
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from exporter.analysis.graph import Graph
from exporter.litert import LiteRTRunner
from exporter.optimize.space import SearchSpace, plan_for
from exporter.recipe import Recipe
from exporter.tensor_names import strip
from exporter.tflite_metadata.model_file import read
from tests.test_cli import run


@pytest.fixture(scope="module")
def pair(tmp_path_factory, demo):
    """(report, bundle) of the demo for android: plain, and with --strip-names."""
    out = {}
    for name, extra in (("plain", []), ("stripped", ["--strip-names"])):
        folder = tmp_path_factory.mktemp("names") / name
        result = run(["export", "--demo", "--target", "android", *extra, "--out", str(folder), "--json"])
        assert result.exit_code == 0, result.stderr
        out[name] = (json.loads(result.stdout), folder)
    return out


def test_stripped_model_computes_the_same_bits_and_is_smaller(pair, demo):
    (plain, plain_dir), (stripped, stripped_dir) = pair["plain"], pair["stripped"]
    x = demo.eval.x[:100]
    assert np.array_equal(LiteRTRunner((plain_dir / "model.tflite").read_bytes()).predict(x),
                          LiteRTRunner((stripped_dir / "model.tflite").read_bytes()).predict(x))
    size = {name: report["measurements"]["gzip_size"]["value"] for name, (report, _) in pair.items()}
    stored = {name: report["measurements"]["model_size"]["value"] for name, (report, _) in pair.items()}
    assert size["stripped"] < size["plain"] - 200 and stored["stripped"] < stored["plain"] - 800   # measured: 307, 960
    assert any(n.startswith("strip_names: removed the names of 15 inner tensors") for n in stripped["notes"])
    assert stripped["recipe"]["strip_names"] is True and plain["recipe"]["strip_names"] is False


def test_only_inner_names_go(pair):
    graphs = {name: Graph.from_file(folder / "model.tflite") for name, (_, folder) in pair.items()}
    io = {name: [(t.name, t.dtype, t.shape) for t in g.input_details() + g.output_details()]
          for name, g in graphs.items()}
    assert io["plain"] == io["stripped"]
    ends = set(graphs["stripped"].inputs) | set(graphs["stripped"].outputs)
    assert all(not t.name for t in graphs["stripped"].tensors if t.index not in ends)
    assert all(t.name for t in graphs["plain"].tensors)
    signatures = {name: LiteRTRunner((folder / "model.tflite").read_bytes()).interpreter.get_signature_list()
                  for name, (_, folder) in pair.items()}
    assert signatures["plain"] == signatures["stripped"] and "serving_default" in signatures["stripped"]
    metadata = {name: read((folder / "model.tflite").read_bytes()) for name, (_, folder) in pair.items()}
    assert metadata["plain"] == metadata["stripped"] and metadata["stripped"]["associated_files"] == ["labels.txt"]


def test_the_stripped_bundle_verifies_and_its_recipe_re_runs_to_the_same_bytes(pair, tmp_path):
    _, folder = pair["stripped"]
    assert run(["verify", str(folder)]).exit_code == 0
    again = run(["export", "--demo", "--target", "android", "--recipe", str(folder), "--out", str(tmp_path / "again")])
    assert again.exit_code == 0, again.stderr
    assert (tmp_path / "again" / "model.tflite").read_bytes() == (folder / "model.tflite").read_bytes()


def test_a_microcontroller_export_saves_the_names_in_flash(demo, tmp_path):
    flash = {}
    for name, extra in (("plain", []), ("stripped", ["--strip-names"])):
        result = run(["export", "--demo", "--target", "microcontroller", *extra, "--out", str(tmp_path / name),
                      "--json"])
        assert result.exit_code == 0, result.stderr          # TFLM ran the stripped model (its arena measured)
        flash[name] = json.loads(result.stdout)["measurements"]["model_flash"]["value"]
    assert flash["plain"] - flash["stripped"] >= 800, flash


def test_a_tflite_is_bundled_as_it_is(tiny_tflite, tmp_path):
    path = tmp_path / "given.tflite"
    path.write_bytes(tiny_tflite)
    result = run(["export", str(path), "--target", "linux", "--strip-names", "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "--strip-names applies only to Keras models" in result.stderr
    assert not (tmp_path / "out").exists()


def test_strip_is_idempotent_and_keeps_io_names(tiny_tflite):
    once, count = strip(tiny_tflite)
    assert count > 0 and strip(once) == (once, 0)
    before, after = Graph.from_bytes(tiny_tflite), Graph.from_bytes(once)
    assert [t.name for t in after.input_details() + after.output_details()] == \
        [t.name for t in before.input_details() + before.output_details()]


def test_every_trial_of_a_search_strips_names_unless_the_space_says_not():
    space = SearchSpace(quantize=("int8",))
    plan = plan_for(space, {"quantize": "int8"}, 0, epochs=1, seed=7)
    assert Recipe.model_validate(plan.recipe).strip_names is True
    off = plan_for(space.model_copy(update={"strip_names": False}), {"quantize": "int8"}, 0, epochs=1, seed=7)
    assert Recipe.model_validate(off.recipe).strip_names is False
