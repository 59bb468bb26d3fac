"""Clustering that compresses: per-channel clusters on microcontrollers, unique values before and after conversion.

One export of the demo for arduino-nano-33-ble with cluster 16 + QAT (one epoch each); every
figure is read back from the bundle's model.tflite with the `tflite` flatbuffer package, not
through edgex's own analysis.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import tflite

import exporter
from exporter.errors import ConfigError
from exporter.profile import load_profile
from exporter.stages.base import StageContext
from exporter.stages.cluster import ClusterStage
from exporter.stages.cluster_mode import resolve_per_channel
from exporter.stages.training import TrainingConfig

CLUSTERS = 16
WEIGHTED = {tflite.BuiltinOperator.CONV_2D: "CONV_2D", tflite.BuiltinOperator.FULLY_CONNECTED: "FULLY_CONNECTED",
            tflite.BuiltinOperator.DEPTHWISE_CONV_2D: "DEPTHWISE_CONV_2D"}


def shipped_kernels(data: bytes) -> list[dict]:
    """Every conv/dense kernel of the .tflite: op, name, int8 values, scales and quantized dimension."""
    model = tflite.Model.GetRootAsModel(data, 0)
    graph = model.Subgraphs(0)
    out = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        name = WEIGHTED.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()))
        if name is None:
            continue
        tensor = graph.Tensors(op.Inputs(1))
        values = model.Buffers(tensor.Buffer()).DataAsNumpy().view(np.int8).reshape(tensor.ShapeAsNumpy())
        q = tensor.Quantization()
        out.append({"op": name, "tensor": tensor.Name().decode(), "values": values,
                    "scales": q.ScaleLength(), "axis": q.QuantizedDimension()})
    return out


def per_channel_max(values: np.ndarray, axis: int) -> int:
    return max(len(np.unique(c)) for c in np.moveaxis(values, axis, 0).reshape(values.shape[axis], -1))


@pytest.fixture(scope="module")
def mcu_cluster(demo, tmp_path_factory):
    out = tmp_path_factory.mktemp("mcu-cluster") / "bundle"
    recipe = {"stages": [{"type": "cluster", "config": {"clusters": CLUSTERS}}, {"type": "qat"}],
              "training": {"epochs": 1}}
    report = exporter.export(demo=True, target="microcontroller", recipe=recipe, out=out, progress=False,
                             limits={"accuracy_drop": 10})
    return report, out


def test_microcontrollers_cluster_conv_kernels_per_channel(mcu_cluster):
    report, _ = mcu_cluster
    cluster = next(r for r in report.stages if r["stage"] == "cluster")
    assert cluster["config"]["per_channel"] == "auto"
    assert cluster["metrics"]["per_channel_layers"] == ["conv2d_1"]
    assert cluster["metrics"]["per_tensor_layers"] == ["dense", "probs"]
    assert cluster["metrics"]["per_channel_fallback"] == {}
    skipped = {s["layer"]: s["reason"] for s in cluster["skipped"]}
    assert "9 kernel weights per output channel" in skipped["conv2d"]
    assert report.stages[-1]["metrics"]["scheme"] == "cqat"
    # the cluster stage's own int8 conversion (no QAT yet: every kernel quantized per channel)
    for name, w in cluster["tflite_weights"].items():
        if w["dtype"] == "int8":
            assert w["unique_per_channel_max"] <= CLUSTERS, name


def test_shipped_kernels_hold_at_most_16_values_per_quantization_channel(mcu_cluster):
    report, out = mcu_cluster
    kernels = shipped_kernels((out / "model.tflite").read_bytes())
    assert [k["op"] for k in kernels] == ["CONV_2D", "CONV_2D", "FULLY_CONNECTED", "FULLY_CONNECTED"]
    conv, dense = kernels[1], kernels[2:]
    assert "conv2d_1" in conv["tensor"]
    assert conv["scales"] == conv["values"].shape[0] == 32 and conv["axis"] == 0      # quantized per channel
    assert per_channel_max(conv["values"], 0) <= CLUSTERS
    assert len(np.unique(conv["values"])) > CLUSTERS           # 16 of its own per channel: more across the tensor
    for k in dense:                                            # QAT's 8-bit scheme: Dense quantized per tensor
        assert k["scales"] == 1, k["tensor"]
        assert len(np.unique(k["values"])) <= CLUSTERS, k["tensor"]
    assert report.measurements["accuracy"].value >= 85


def test_report_has_a_consistent_before_after_table(mcu_cluster):
    report, out = mcu_cluster
    rows = {r["layer"]: r for r in report.weight_values}
    assert list(rows) == ["conv2d", "conv2d_1", "dense", "probs"]
    assert rows["conv2d_1"]["clustered"] == "per channel" and rows["dense"]["clustered"] == "per tensor"
    assert rows["conv2d"]["clustered"] is None
    shipped = {k["tensor"]: k for k in shipped_kernels((out / "model.tflite").read_bytes())}
    for name, r in rows.items():
        k = shipped[r["tensor"]]
        assert r["tflite_unique"] == len(np.unique(k["values"])), name
        assert r["tflite_unique_per_channel_max"] == per_channel_max(k["values"], k["axis"]), name
        assert r["quantization"] == ("per channel (axis 0)" if k["scales"] > 1 else "per tensor"), name
        # one code per float within a channel: conversion never adds values to a channel
        assert r["tflite_unique_per_channel_max"] <= r["keras_unique_per_channel_max"], name
        if r["clustered"]:
            assert r["keras_unique_per_channel_max"] <= CLUSTERS, name
    assert rows["dense"]["keras_unique"] <= CLUSTERS
    markdown = (out / "report.md").read_text()
    assert "Unique weight values before and after conversion" in markdown
    assert f"| conv2d_1 | Conv2D | per channel | {rows['conv2d_1']['keras_unique']} |" in markdown
    assert "Unique weight values before and after conversion" in (out / "report.html").read_text()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["weight_values"] == report.to_dict()["weight_values"] == report.weight_values


def test_per_channel_setting_is_strict_and_follows_the_target():
    assert ClusterStage({"per_channel": True}).config.per_channel is True
    with pytest.raises(ConfigError, match="per_channel"):
        ClusterStage({"per_channel": "yes"})
    mcu, phone = load_profile("arduino-nano-33-ble"), load_profile("android-arm64-midrange")
    assert resolve_per_channel("auto", mcu, "int8") and not resolve_per_channel("auto", phone, "int8")
    assert resolve_per_channel(True, phone, "int8") and not resolve_per_channel(False, mcu, "int8")


def test_a_pruned_channel_too_sparse_for_per_channel_init_is_clustered_per_tensor(keras, demo):
    """TF-MOT's sparsity-preserving per-channel k-means++ init fails on a channel with fewer non-zero weights
    than centroids ("Expected num_to_sample <= points.rows()", seen on the demo pruned to 90 %)."""
    layers = keras.layers
    keras.utils.set_random_seed(5)
    model = keras.Sequential([layers.Input((8, 8, 1)), layers.Conv2D(8, 3, activation="relu", name="c1"),
                              layers.Conv2D(4, 3, activation="relu", name="c2"), layers.Flatten(),
                              layers.Dense(10, activation="softmax", name="head")])
    kernel, bias = model.get_layer("c2").get_weights()
    kernel[..., 0] = 0
    kernel[0, 0, 0, 0] = 0.5                               # channel 0 of c2: one non-zero weight of 72
    model.get_layer("c2").set_weights([kernel, bias])
    ctx = StageContext(train=demo.train, eval=demo.eval, training=TrainingConfig(epochs=1),
                       profile=load_profile("arduino-nano-33-ble"), mode="int8", previous=["prune"])
    result = ClusterStage({"clusters": 8}).apply(model, ctx)
    metrics = result.metrics
    assert metrics["preserve_sparsity"] is True
    assert "c2" in metrics["per_tensor_layers"] and "c2" not in metrics["per_channel_layers"]
    assert "output channel 0 has 1 non-zero weights" in metrics["per_channel_fallback"]["c2"]
    assert any(note.startswith("c2: clustered per tensor, not per channel") for note in result.notes)
    clustered = result.model.get_layer("c2").get_weights()[0]
    assert len(np.unique(clustered)) <= 8 and np.count_nonzero(clustered[..., 0]) <= 1


def test_a_kernel_too_sparse_for_any_sparsity_preserving_init_is_left_alone(keras, demo):
    """A pruned kernel with fewer non-zero weights than centroids crashed TF-MOT's k-means++ init in a search
    (`Expected num_to_sample <= points.rows(). 15 vs 14`); it is now left unclustered with the reason."""
    layers = keras.layers
    keras.utils.set_random_seed(5)
    model = keras.Sequential([layers.Input((8, 8, 1)), layers.Conv2D(4, 3, activation="relu", name="c1"),
                              layers.Flatten(), layers.Dense(10, activation="softmax", name="head")])
    kernel, bias = model.get_layer("c1").get_weights()
    kernel[:] = 0
    kernel[0, 0, 0, :3] = (0.5, -0.4, 0.3)                  # 3 non-zero weights of 36
    model.get_layer("c1").set_weights([kernel, bias])
    for profile in ("android-arm64-midrange", "arduino-nano-33-ble"):     # per tensor, and per channel first
        ctx = StageContext(train=demo.train, eval=demo.eval, training=TrainingConfig(epochs=1),
                           profile=load_profile(profile), mode="int8", previous=["prune"])
        result = ClusterStage({"clusters": 8}).apply(model, ctx)
        reasons = {entry["layer"]: entry["reason"] for entry in result.skipped}
        assert "too few non-zero kernel weights" in reasons["c1"], profile
        assert result.metrics["per_tensor_layers"] == ["head"]
        assert len(np.unique(result.model.get_layer("c1").get_weights()[0])) > 8     # fine-tuned, not clustered
