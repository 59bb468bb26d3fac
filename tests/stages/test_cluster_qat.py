"""The cluster and qat stages on the demo, measured on the int8 .tflite where it matters."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import tflite

from exporter.errors import ConfigError, ConversionError, UsageError
from exporter.litert import LiteRTRunner
from exporter.profile import load_profile
from exporter.stages.base import StageContext
from exporter.stages.cluster import ClusterStage
from exporter.stages.convert import ConvertConfig, convert
from exporter.stages.qat import QatStage
from exporter.stages.training import TrainingConfig, clone, fit

CLUSTERS = 16
SPARSITY = 0.8


def int8_kernels(tflite_bytes: bytes) -> dict[str, np.ndarray]:
    """Constant int8 tensors of rank >= 2 (conv and dense kernels), read from the flatbuffer."""
    model = tflite.Model.GetRootAsModel(tflite_bytes, 0)
    graph = model.Subgraphs(0)
    out = {}
    for i in range(graph.TensorsLength()):
        tensor = graph.Tensors(i)
        if tensor.Type() != tflite.TensorType.INT8 or tensor.ShapeLength() < 2:
            continue
        data = model.Buffers(tensor.Buffer()).DataAsNumpy()
        if isinstance(data, int) or data.size == 0:
            continue
        out[tensor.Name().decode()] = data.view(np.int8).reshape(tensor.ShapeAsNumpy())
    return out


def max_unique_per_channel(kernel: np.ndarray) -> int:
    """Most distinct values in one output channel (axis 0 in TFLite conv and dense kernels)."""
    return max(len(np.unique(kernel[c])) for c in range(kernel.shape[0]))


def keras_kernels(model) -> dict[str, np.ndarray]:
    return {layer.name: layer.get_weights()[0] for layer in model.layers if layer.weights}


def to_int8(model, demo) -> bytes:
    return convert(model, ConvertConfig(mode="int8", io_dtype="int8"), calib=demo.calib.x)


def tflite_accuracy(tflite_bytes: bytes, dataset) -> float:
    probs = LiteRTRunner(tflite_bytes).predict(dataset.x)
    return float((probs.argmax(axis=1) == dataset.y).mean() * 100)


@pytest.fixture(scope="module")
def base_model(demo, keras):
    return keras.models.load_model(demo.model_path, compile=False)


@pytest.fixture(scope="module")
def make_ctx(demo):
    profile = load_profile("android-arm64-midrange")

    def make(previous=(), skip=(), epochs=2):
        return StageContext(train=demo.train, eval=demo.eval, training=TrainingConfig(epochs=epochs),
                            profile=profile, mode="int8", previous=list(previous), skip_layers=tuple(skip))
    return make


@pytest.fixture(scope="module")
def clustered(base_model, make_ctx):
    return ClusterStage({"clusters": CLUSTERS}).apply(base_model, make_ctx())


@pytest.fixture(scope="module")
def pruned(base_model, make_ctx):
    """The demo pruned to 80 % (the prune stage when present, else TF-MOT directly)."""
    ctx = make_ctx()
    if importlib.util.find_spec("exporter.stages.prune") is not None:
        from exporter.stages.prune import PruneStage

        return PruneStage({"sparsity": SPARSITY}).apply(base_model, ctx).model
    from exporter import tf as tfmod

    mot = tfmod.tfmot()
    schedule = mot.sparsity.keras.ConstantSparsity(SPARSITY, 0, frequency=10)
    wrapped = mot.sparsity.keras.prune_low_magnitude(clone(base_model), pruning_schedule=schedule)
    fit(wrapped, ctx, callbacks=[mot.sparsity.keras.UpdatePruningStep()])
    return mot.sparsity.keras.strip_pruning(wrapped)


@pytest.fixture(scope="module")
def pruned_clustered(pruned, make_ctx):
    return ClusterStage({"clusters": CLUSTERS}).apply(pruned, make_ctx(previous=["prune"]))


# -- cluster -----------------------------------------------------------------------------------------------

def test_cluster_shares_weights_in_keras_and_tflite(clustered, base_model, demo):
    assert clustered.metrics == {"clusters": CLUSTERS, "init": "kmeans_plus_plus", "preserve_sparsity": False,
                                 "layers": 4, "per_channel_layers": [],       # android: per tensor (auto)
                                 "per_tensor_layers": ["conv2d", "conv2d_1", "dense", "probs"],
                                 "per_channel_fallback": {}}
    kernels = keras_kernels(clustered.model)
    assert len(kernels) == 4
    for name, kernel in kernels.items():
        assert len(np.unique(kernel)) <= CLUSTERS, name
    data = to_int8(clustered.model, demo)
    tfl = int8_kernels(data)
    assert len(tfl) == 4
    for name, kernel in tfl.items():
        assert max_unique_per_channel(kernel) <= CLUSTERS, name
    assert tflite_accuracy(data, demo.eval) >= 90
    assert to_int8(base_model, demo)  # the input model was not consumed
    assert max(len(np.unique(k)) for k in keras_kernels(base_model).values()) > CLUSTERS


def test_cluster_after_pruning_keeps_sparsity(pruned_clustered):
    assert pruned_clustered.metrics["preserve_sparsity"] is True
    for name, kernel in keras_kernels(pruned_clustered.model).items():
        assert (kernel == 0).mean() >= 0.75, name
        assert len(np.unique(kernel)) <= CLUSTERS, name


def test_cluster_selection_leaves_other_layers_plain(base_model, make_ctx):
    result = ClusterStage({"clusters": 8, "layer_types": ["Dense"], "init": "linear"}).apply(
        base_model, make_ctx(epochs=1))
    uniques = {name: len(np.unique(k)) for name, k in keras_kernels(result.model).items()}
    assert uniques["dense"] <= 8 and uniques["probs"] <= 8
    assert uniques["conv2d_1"] > 8
    assert result.metrics["layers"] == 2


@pytest.mark.parametrize("config", [{"init": "kmeans"}, {"clusters": 1}, {"clusters": 300}, {"cluster": 8}])
def test_cluster_config_errors(config):
    with pytest.raises(ConfigError):
        ClusterStage(config)


def test_cluster_unknown_layer_name(base_model, make_ctx):
    with pytest.raises(ConfigError, match="dens"):
        ClusterStage({"layers": ["dens"]}).apply(base_model, make_ctx())


@pytest.fixture(scope="module")
def custom_model(keras):
    class Scale(keras.layers.Layer):
        def build(self, input_shape):
            self.scale = self.add_weight(name="scale", shape=(input_shape[-1],), initializer="ones")

        def call(self, x):
            return x * self.scale

    keras.utils.set_random_seed(3)
    return keras.Sequential([
        keras.layers.Input((8, 8, 1)),
        keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.Flatten(),
        Scale(name="scale"),
        keras.layers.Dense(10, activation="softmax"),
    ])


@pytest.mark.reliability(17)
def test_cluster_refuses_unsupported_layer_and_skip_works(custom_model, make_ctx):
    with pytest.raises(ConversionError, match=r"scale \(Scale\).*skip_layers=\['scale'\] in the recipe"):
        ClusterStage({"clusters": 8}).apply(custom_model, make_ctx(epochs=1))
    result = ClusterStage({"clusters": 8}).apply(custom_model, make_ctx(skip=["scale"], epochs=1))
    assert [s["layer"] for s in result.skipped] == ["scale"]
    assert len(np.unique(result.model.layers[-1].get_weights()[0])) <= 8


# -- qat ---------------------------------------------------------------------------------------------------

def test_qat_default_converts_to_accurate_int8(base_model, make_ctx, demo):
    result = QatStage().apply(base_model, make_ctx())
    assert result.metrics == {"scheme": "default"}
    data = to_int8(result.model, demo)
    assert len(int8_kernels(data)) == 4
    assert tflite_accuracy(data, demo.eval) >= 90


def test_pcqat_keeps_sparsity_and_clusters_in_tflite(pruned_clustered, make_ctx, demo):
    result = QatStage().apply(pruned_clustered.model, make_ctx(previous=["prune", "cluster"]))
    assert result.metrics == {"scheme": "pcqat"}
    data = to_int8(result.model, demo)
    kernels = int8_kernels(data)
    assert len(kernels) == 4
    for name, kernel in kernels.items():
        assert (kernel == 0).mean() >= 0.75, name
        assert max_unique_per_channel(kernel) <= CLUSTERS + 1, name  # the clusters, plus zero
    assert tflite_accuracy(data, demo.eval) >= 88


def test_qat_check_profile_refusals():
    profile = load_profile("android-arm64-midrange")
    with pytest.raises(UsageError, match="int8"):
        QatStage().check_profile(profile, "float16", [])
    with pytest.raises(UsageError, match="cluster"):
        QatStage({"scheme": "cqat"}).check_profile(profile, "int8", ["prune"])
    with pytest.raises(UsageError, match="prun"):
        QatStage({"scheme": "pcqat"}).check_profile(profile, "int8", ["cluster"])
    QatStage({"scheme": "pqat"}).check_profile(profile, "int8", ["sparsify"])
    with pytest.raises(ConfigError):
        QatStage({"scheme": "int4"})


@pytest.mark.reliability(17)
def test_qat_refuses_unsupported_layer_and_skip_works(custom_model, make_ctx, demo):
    with pytest.raises(ConversionError, match=r"scale \(Scale\)"):
        QatStage().apply(custom_model, make_ctx(epochs=1))
    result = QatStage().apply(custom_model, make_ctx(skip=["scale"], epochs=1))
    assert result.skipped == [{"layer": "scale", "class": "Scale", "reason": "skipped by --skip-layer"}]
    assert LiteRTRunner(to_int8(result.model, demo)).predict(demo.eval.x[:4]).shape == (4, 10)



@pytest.fixture(scope="module")
def bn_model(keras):
    layers = keras.layers
    keras.utils.set_random_seed(4)
    return keras.Sequential([
        layers.Input((8, 8, 1)),
        layers.Conv2D(8, 3, name="conv"),                     # linear: TF-MOT folds the BN below into it
        layers.BatchNormalization(name="bn_folded"),
        layers.ReLU(),
        layers.DepthwiseConv2D(3, activation="relu", name="dw"),
        layers.BatchNormalization(name="bn_alone"),            # after an activation: nothing to fold into
        layers.Flatten(),
        layers.Dense(10, activation="softmax", name="head"),
    ])


def test_cluster_lists_layers_it_leaves_alone(bn_model, make_ctx):
    result = ClusterStage({"clusters": 8}).apply(bn_model, make_ctx(epochs=1))
    assert result.metrics["layers"] == 2
    assert {s["layer"] for s in result.skipped} == {"bn_folded", "dw", "bn_alone"}


@pytest.mark.reliability(17)
def test_qat_folds_batchnorm_after_linear_conv_and_refuses_a_lone_one(bn_model, make_ctx, demo):
    with pytest.raises(ConversionError, match=r"bn_alone \(BatchNormalization\)") as info:
        QatStage().apply(bn_model, make_ctx(epochs=1))
    assert "bn_folded" not in str(info.value)
    result = QatStage().apply(bn_model, make_ctx(skip=["bn_alone"], epochs=1))
    assert [s["layer"] for s in result.skipped] == ["bn_alone"]
    assert LiteRTRunner(to_int8(result.model, demo)).predict(demo.eval.x[:4]).shape == (4, 10)
