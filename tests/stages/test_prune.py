"""The pruning stages on the demo CNN, measured on the Keras kernels and on the int8 .tflite weights."""
from __future__ import annotations

import numpy as np
import pytest
import tflite

from exporter.errors import ConfigError, ConversionError
from exporter.model_io import load_model
from exporter.profile import load_profile
from exporter.stages.base import StageContext
from exporter.stages.convert import ConvertConfig, convert
from exporter.stages.prune import PruneStage, SparsifyStage
from exporter.stages.training import TrainingConfig, accuracy

KERNEL_LAYERS = ["conv2d", "conv2d_1", "dense", "probs"]


def int8_kernels(tflite_bytes: bytes, layers) -> dict[str, np.ndarray]:
    """The int8 constant weight tensor (rank >= 2) of each named layer, as stored in the flatbuffer."""
    model = tflite.Model.GetRootAsModel(tflite_bytes, 0)
    graph = model.Subgraphs(0)
    found = {}
    for i in range(graph.TensorsLength()):
        tensor = graph.Tensors(i)
        data = model.Buffers(tensor.Buffer()).DataAsNumpy()
        if tensor.Type() != tflite.TensorType.INT8 or isinstance(data, int) or tensor.ShapeLength() < 2:
            continue
        name = tensor.Name().decode()
        for layer in layers:
            if f"/{layer}/" in name:
                assert layer not in found, f"two int8 weight tensors for {layer}: {name}"
                found[layer] = np.frombuffer(data.tobytes(), np.int8).reshape(tensor.ShapeAsNumpy())
    assert set(found) == set(layers), f"missing int8 kernels: {set(layers) - set(found)}"
    return found


def zeros(array) -> float:
    return float(np.mean(np.asarray(array) == 0))


def to_int8(model, demo) -> bytes:
    return convert(model, ConvertConfig(mode="int8", io_dtype="int8"), calib=demo.calib.x)


def context(demo, epochs=2, skip=()):
    return StageContext(train=demo.train, eval=demo.eval, training=TrainingConfig(epochs=epochs),
                        profile=load_profile("android-arm64-midrange"), mode="int8", skip_layers=skip)


@pytest.fixture(scope="module")
def model(demo):
    return load_model(demo.model_path).model


@pytest.fixture(scope="module")
def pruned(model, demo):
    before = [w.copy() for w in model.get_weights()]
    result = PruneStage({"sparsity": 0.8}).apply(model, context(demo, epochs=3))  # 2 epochs gave 90.6 %: too close to the bar
    return result, before


def test_polynomial_pruning_reaches_target_in_int8_and_keeps_accuracy(pruned, demo):
    result, _ = pruned
    assert result.metrics["pruned_layers"] == KERNEL_LAYERS
    assert result.metrics["target_sparsity"] == 0.8
    for layer, kernel in int8_kernels(to_int8(result.model, demo), KERNEL_LAYERS).items():
        assert zeros(kernel) >= 0.78, (layer, zeros(kernel))
    assert accuracy(result.model, demo.eval) >= 90
    classes = {type(layer).__name__ for layer in result.model.layers}
    assert not any("Prune" in name for name in classes), classes
    assert not any(w.name.split("/")[-1].startswith(("mask", "threshold", "pruning_step"))
                   for w in result.model.weights)


def test_input_model_is_unchanged_and_still_converts(pruned, model, demo):
    _, before = pruned
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)
    assert zeros(model.get_layer("dense").kernel.numpy()) < 0.01
    kernels = int8_kernels(to_int8(model, demo), ["dense"])
    assert zeros(kernels["dense"]) < 0.05


def test_constant_schedule(model, demo):
    result = PruneStage({"sparsity": 0.8, "schedule": "constant"}).apply(model, context(demo, epochs=1))
    assert result.metrics["schedule"] == "constant"
    for layer in KERNEL_LAYERS:
        assert zeros(result.model.get_layer(layer).kernel.numpy()) >= 0.78, layer
    assert accuracy(result.model, demo.eval) >= 90


def test_two_of_four_structure_on_int8_kernels(model, demo):
    result = PruneStage({"structure": "2:4"}).apply(model, context(demo, epochs=1))
    assert result.skipped == [{"layer": "conv2d", "class": "Conv2D",
                               "reason": "input channels 1 not a multiple of 4"}]
    structured = ["conv2d_1", "dense", "probs"]
    assert result.metrics["pruned_layers"] == structured
    kernels = int8_kernels(to_int8(result.model, demo), KERNEL_LAYERS)
    for layer in structured:
        groups = kernels[layer].reshape(-1, 4)          # TFLite: [out, kh, kw, in] / [out, in]
        assert np.count_nonzero(groups, axis=1).max() <= 2, layer
        assert zeros(kernels[layer]) == pytest.approx(0.5, abs=0.01), layer
    assert zeros(kernels["conv2d"]) < 0.05              # skipped: left dense


@pytest.mark.parametrize("selection, chosen", [
    ({"layers": ["dense"]}, ["dense"]),
    ({"layer_types": ["Conv2D"]}, ["conv2d", "conv2d_1"]),
])
def test_layer_selection(model, demo, selection, chosen):
    result = PruneStage({"sparsity": 0.8, **selection}).apply(model, context(demo, epochs=1))
    assert result.metrics["pruned_layers"] == chosen
    for layer in KERNEL_LAYERS:
        share = zeros(result.model.get_layer(layer).kernel.numpy())
        assert share >= 0.78 if layer in chosen else share < 0.02, (layer, share)


def test_sparsify_zeroes_exactly_the_target_share(model, demo):
    result = SparsifyStage({"sparsity": 0.5}).apply(model, context(demo))
    assert result.metrics["sparsified_layers"] == KERNEL_LAYERS
    assert 0 <= result.metrics["sparsity_before_threshold"] < 1
    for layer in KERNEL_LAYERS:
        assert zeros(result.model.get_layer(layer).kernel.numpy()) == pytest.approx(0.5, abs=0.01), layer
    for layer, kernel in int8_kernels(to_int8(result.model, demo), KERNEL_LAYERS).items():
        assert zeros(kernel) == pytest.approx(0.5, abs=0.01), (layer, zeros(kernel))
    assert accuracy(result.model, demo.eval) >= 85
    assert not result.model.losses
    assert all(getattr(layer, "kernel_regularizer", None) is None for layer in result.model.layers)
    assert all(model.get_layer(layer).kernel_regularizer is None for layer in KERNEL_LAYERS)


def test_sparsify_global_scope_shares_one_threshold(model, demo):
    result = SparsifyStage({"sparsity": 0.5, "scope": "global"}).apply(model, context(demo, epochs=1))
    kernels = [result.model.get_layer(layer).kernel.numpy() for layer in KERNEL_LAYERS]
    flat = np.concatenate([k.ravel() for k in kernels])
    assert zeros(flat) == pytest.approx(0.5, abs=0.001)
    shares = [zeros(k) for k in kernels]
    assert max(shares) - min(shares) > 0.05, shares    # one threshold: layers end up unequally sparse


@pytest.mark.reliability(8)
@pytest.mark.parametrize("stage, config, words", [
    (PruneStage, {"sparsity": 1.5}, ["sparsity"]),
    (PruneStage, {"sparsity": 1.0}, ["sparsity"]),
    (PruneStage, {"sparsity": 0}, ["sparsity"]),
    (PruneStage, {}, ["sparsity", "required"]),
    (PruneStage, {"sparsity": 0.8, "sparsityy": 0.8}, ["sparsityy", "unknown key"]),
    (PruneStage, {"structure": "3:5"}, ["structure", "2:4"]),
    (PruneStage, {"structure": "two of four"}, ["structure", "M:N"]),
    (PruneStage, {"structure": "2:4", "sparsity": 0.8}, ["sparsity", "0.5"]),
    (PruneStage, {"sparsity": 0.5, "initial_sparsity": 0.6}, ["initial_sparsity"]),
    (PruneStage, {"sparsity": 0.5, "begin_step": 10, "end_step": 10}, ["end_step"]),
    (PruneStage, {"sparsity": 0.5, "schedule": "cubic"}, ["schedule"]),
    (SparsifyStage, {"sparsity": 1.0}, ["sparsity"]),
    (SparsifyStage, {"l1": 0}, ["l1"]),
    (SparsifyStage, {"scope": "model"}, ["scope"]),
])
def test_config_errors(stage, config, words):
    with pytest.raises(ConfigError) as err:
        stage(config)
    for word in words:
        assert word in str(err.value)


@pytest.mark.parametrize("config, words", [
    ({"sparsity": 0.5, "layers": ["dense_1"]}, ["dense_1", "did you mean 'dense'"]),
    ({"sparsity": 0.5, "layers": ["flatten"]}, ["flatten", "no weights"]),
    ({"sparsity": 0.5, "layer_types": ["LSTM"]}, ["LSTM"]),
    ({"sparsity": 0.5, "end_step": 10_000}, ["end_step", "steps"]),
])
def test_selection_and_schedule_errors_before_training(model, demo, config, words):
    with pytest.raises(ConfigError) as err:
        PruneStage(config).apply(model, context(demo))
    for word in words:
        assert word in str(err.value)


@pytest.fixture(scope="module")
def scaled_model(keras):
    class Scale(keras.layers.Layer):
        def build(self, input_shape):
            self.factor = self.add_weight(name="factor", shape=(input_shape[-1],), initializer="ones")

        def call(self, inputs):
            return inputs * self.factor

    inputs = keras.layers.Input((8, 8, 1))
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv")(inputs)
    x = Scale(name="scale")(x)
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, keras.layers.Dense(10, activation="softmax", name="out")(x))


@pytest.mark.reliability(17)
@pytest.mark.parametrize("stage, config", [(PruneStage, {"sparsity": 0.5}), (SparsifyStage, {})])
def test_layer_tfmot_cannot_handle_is_refused_then_skippable(scaled_model, demo, stage, config):
    with pytest.raises(ConversionError) as err:
        stage(config).apply(scaled_model, context(demo, epochs=1))
    assert "scale (Scale)" in str(err.value) and "skip_layers=['scale'] in the recipe" in str(err.value)
    result = stage(config).apply(scaled_model, context(demo, epochs=1, skip=("scale",)))
    assert result.skipped == [{"layer": "scale", "class": "Scale", "reason": "skipped by --skip-layer"}]
    assert zeros(result.model.get_layer("out").kernel.numpy()) == pytest.approx(0.5, abs=0.01)
    scale = result.model.get_layer("scale")    # not pruned (fine-tuning still trains it)
    assert type(scale).__name__ == "Scale" and zeros(scale.get_weights()[0]) == 0


@pytest.mark.parametrize("stage, config", [(PruneStage, {"sparsity": 0.5}), (SparsifyStage, {})])
def test_subclassed_model_is_refused(keras, demo, stage, config):
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.flat = keras.layers.Flatten()
            self.out = keras.layers.Dense(10)

        def call(self, inputs):
            return self.out(self.flat(inputs))

    net = Net()
    net(np.zeros((1, 8, 8, 1), np.float32))
    with pytest.raises(ConversionError, match="subclassed"):
        stage(config).apply(net, context(demo, epochs=1))


@pytest.mark.parametrize("stage, config", [
    (PruneStage, {"structure": "2:4"}),
    (PruneStage, {"sparsity": 0.8, "schedule": "constant", "layers": ["dense"]}),
    (SparsifyStage, {"l1": 1e-3, "scope": "global"}),
])
def test_config_round_trips(stage, config):
    spec = stage(config).to_spec()
    assert spec["type"] == stage.name
    assert stage(spec["config"]).config == stage(config).config
