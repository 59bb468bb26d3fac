"""The per-layer sensitivity pass on the demo CNN, and its numpy pruning and clustering."""
from __future__ import annotations

import numpy as np

from exporter.optimize.sensitivity import cluster_kernel, model_info, prune_kernel, sensitivity
from exporter.profile import load_profile


def test_sensitivity_ranks_the_demo_layers_and_restores_them(doctest_model, demo):
    before = [w.copy() for w in doctest_model.get_weights()]
    rows = sensitivity(doctest_model, demo.eval, load_profile("android-arm64-midrange"))
    assert [np.array_equal(a, b) for a, b in zip(before, doctest_model.get_weights())] == [True] * len(before)
    assert sorted(r["layer"] for r in rows) == ["conv2d", "conv2d_1", "dense", "probs"]
    assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)
    for row in rows:
        assert row["score"] == max(row["drop_pruned"], row["drop_clustered"])
    assert rows[0]["score"] > 1                         # pruning some layer to 90 % alone costs points
    by_name = {r["layer"]: r for r in rows}
    assert by_name["dense"]["params"] == 32768 and by_name["conv2d"]["class"] == "Conv2D"


def test_sensitivity_without_labels_measures_agreement(doctest_model, demo):
    rows = sensitivity(doctest_model, demo.eval.x, load_profile("arduino-nano-33-ble"))
    assert len(rows) == 4 and all(0 <= r["drop_pruned"] <= 100 for r in rows)
    assert sensitivity(doctest_model, None, load_profile("arduino-nano-33-ble")) == []


def test_numpy_pruning_and_clustering():
    kernel = np.random.default_rng(0).normal(size=(3, 3, 4, 8)).astype(np.float32)
    pruned = prune_kernel(kernel, 0.9)
    assert np.mean(pruned == 0) == round(kernel.size * 0.9) / kernel.size
    assert np.all(np.abs(pruned[pruned != 0]) >= np.abs(kernel[pruned == 0]).max())
    clustered = cluster_kernel(kernel, 4)
    assert len(np.unique(clustered)) == 4 and clustered.dtype == kernel.dtype
    per_channel = cluster_kernel(kernel, 4, per_channel=True)
    assert all(len(np.unique(per_channel[..., c])) <= 4 for c in range(8)) and len(np.unique(per_channel)) > 4
    assert np.abs(per_channel - kernel).mean() < np.abs(clustered - kernel).mean()


def test_model_info(doctest_model):
    info = model_info(doctest_model)
    assert [layer["name"] for layer in info["layers"]] == ["conv2d", "conv2d_1", "dense", "probs"]
    assert info["params"] == doctest_model.count_params() and info["conv2d"] is True
