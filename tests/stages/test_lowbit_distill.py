"""Low-bit (4/2/1-bit STE) and distillation stages on the demo, measured in Keras and in the int8 .tflite."""
from __future__ import annotations

import gzip

import numpy as np
import pytest

from exporter.errors import ConfigError, UsageError
from exporter.stages.base import StageContext, get_stage
from exporter.stages.training import TrainingConfig

MAX_UNIQUE = {4: 15, 2: 3, 1: 2}


def int8_kernels(tflite_bytes: bytes) -> list[tuple[str, str, np.ndarray]]:
    """(op, tensor name, int8 weights as [channels, -1]) for every conv / FC weight in the flatbuffer.

    TFLite layouts: CONV_2D [out, kh, kw, in] and FULLY_CONNECTED [out, in] have the output
    channel first, DEPTHWISE_CONV_2D [1, kh, kw, out] last.
    """
    import tflite

    model = tflite.Model.GetRootAsModel(tflite_bytes, 0)
    graph = model.Subgraphs(0)
    names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_") and isinstance(v, int)}
    found = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        name = names[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]
        if name not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            continue
        tensor = graph.Tensors(op.Inputs(1))
        assert tensor.Type() == tflite.TensorType.INT8, f"{name} weights are not int8"
        data = np.frombuffer(model.Buffers(tensor.Buffer()).DataAsNumpy().tobytes(), np.int8)
        weights = data.reshape(tensor.ShapeAsNumpy())
        axis = weights.ndim - 1 if name == "DEPTHWISE_CONV_2D" else 0
        found.append((name, tensor.Name().decode(), np.moveaxis(weights, axis, 0).reshape(weights.shape[axis], -1)))
    return found


def per_channel_unique(rows: np.ndarray) -> list[int]:
    return [len(np.unique(row)) for row in rows]


def make_ctx(demo, epochs: int, mode: str = "int8") -> StageContext:
    from exporter.profile import load_profile

    return StageContext(train=demo.train, eval=demo.eval, training=TrainingConfig(epochs=epochs),
                        profile=load_profile("android-arm64-midrange"), mode=mode)


@pytest.fixture(scope="module")
def teacher(demo, keras):
    return keras.models.load_model(demo.model_path, compile=False)


@pytest.fixture(scope="module")
def int8(demo):
    from exporter.stages.convert import ConvertConfig, convert

    return lambda model: convert(model, ConvertConfig(mode="int8", io_dtype="int8"), calib=demo.calib.x)


@pytest.fixture(scope="module")
def lowbit(demo, teacher, int8):
    """bits -> (StageResult, int8 tflite bytes), 3 epochs each; plus the plain PTQ model under key 8."""
    before = [w.copy() for w in teacher.get_weights()]
    out = {8: (None, int8(teacher))}
    for bits in (4, 2, 1):
        result = get_stage("lowbit")({"bits": bits}).apply(teacher, make_ctx(demo, 3))
        out[bits] = (result, int8(result.model))
    assert all(np.array_equal(a, b) for a, b in zip(before, teacher.get_weights())), "the teacher was modified"
    return out


@pytest.mark.parametrize("bits", [4, 2, 1])
def test_lowbit_keras_kernels_have_few_values_per_channel(lowbit, bits, keras):
    result, _ = lowbit[bits]
    kernels = [layer.kernel.numpy() for layer in result.model.layers
               if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense))]
    assert len(kernels) == 4
    counts = [n for k in kernels for n in per_channel_unique(k.reshape(-1, k.shape[-1]).T)]
    assert max(counts) <= MAX_UNIQUE[bits]
    assert result.metrics == {"bits": bits, "unique_values_per_channel_max": max(counts), "layers_quantized": 4}
    assert not any(type(layer).__module__.startswith("exporter") for layer in result.model.layers)


@pytest.mark.parametrize("bits", [4, 2, 1])
def test_lowbit_int8_tflite_kernels_have_few_values_per_channel(lowbit, bits):
    kernels = int8_kernels(lowbit[bits][1])
    assert [op for op, _, _ in kernels] == ["CONV_2D", "CONV_2D", "FULLY_CONNECTED", "FULLY_CONNECTED"]
    for op, name, rows in kernels:
        counts = per_channel_unique(rows)
        assert max(counts) <= MAX_UNIQUE[bits], f"{name}: {max(counts)} values in a channel"
        if bits == 1:
            assert set(counts) == {2}, f"{name}: a binary channel without both signs"
            assert set(np.unique(rows)) == {-127, 127}
    # the plain PTQ model, for contrast, uses far more codes per channel
    assert max(max(per_channel_unique(rows)) for _, _, rows in int8_kernels(lowbit[8][1])) > 50


def test_lowbit_tflite_runs_in_litert_with_useful_accuracy(lowbit, demo):
    from exporter.litert import LiteRTRunner

    acc = {bits: float((LiteRTRunner(lowbit[bits][1]).predict(demo.eval.x).argmax(1) == demo.eval.y).mean() * 100)
           for bits in (4, 1)}
    print(f"LiteRT int8 accuracy: 4-bit {acc[4]:.1f} %, 1-bit {acc[1]:.1f} %")
    assert acc[4] >= 90
    assert acc[1] >= 60


def test_lowbit_binary_tflite_compresses_much_better_than_ptq(lowbit):
    ptq, binary = (len(gzip.compress(lowbit[b][1], 9)) for b in (8, 1))
    print(f"gzip: PTQ {ptq} B, 1-bit {binary} B")
    assert binary < 0.5 * ptq


def test_lowbit_refuses_non_int8_conversion(demo, teacher):
    stage = get_stage("lowbit")({"bits": 2})
    ctx = make_ctx(demo, 1, mode="float16")
    with pytest.raises(UsageError, match="int8"):
        stage.check_profile(ctx.profile, "float16", [])
    with pytest.raises(UsageError):
        stage.apply(teacher, ctx)


def test_lowbit_skips_first_last_and_skip_layers(demo, teacher):
    ctx = make_ctx(demo, 1)
    ctx.skip_layers = ("dense",)
    result = get_stage("lowbit")({"bits": 2, "skip_first_and_last": True}).apply(teacher, ctx)
    assert {s["layer"] for s in result.skipped} == {"conv2d", "dense", "probs"}
    layers = {layer.name: layer for layer in result.model.layers}
    k = layers["conv2d_1"].kernel.numpy()
    assert max(per_channel_unique(k.reshape(-1, k.shape[-1]).T)) <= 3
    for name in ("conv2d", "dense", "probs"):
        k = layers[name].kernel.numpy()
        assert max(per_channel_unique(k.reshape(-1, k.shape[-1]).T)) > 3, f"{name} was quantized"


@pytest.mark.parametrize("config", [{"bits": 3}, {"bits": 2, "layers": ["max_pooling2d"]},
                                    {"bits": 2, "layers": ["nope"]}, {"bits": 2, "extra": 1}])
def test_lowbit_config_errors(demo, teacher, config):
    with pytest.raises(ConfigError):
        get_stage("lowbit")(config).apply(teacher, make_ctx(demo, 1))


# --- distillation --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def constant_teacher(keras):
    """The demo architecture with a final Dense that always says class 3."""
    from exporter.demo import build_model

    keras.utils.set_random_seed(3)
    model = build_model()
    bias = np.zeros(10, np.float32)
    bias[3] = 5.0
    model.get_layer("probs").set_weights([np.zeros((64, 10), np.float32), bias])
    return model


def test_distill_width_half_soft(demo, teacher, keras):
    before = [w.copy() for w in teacher.get_weights()]
    result = get_stage("distill")({"width": 0.5, "epochs": 5}).apply(teacher, make_ctx(demo, 1))
    m = result.metrics
    print(m)
    student = result.model
    assert type(student) is keras.Sequential
    convs = [layer.filters for layer in student.layers if isinstance(layer, keras.layers.Conv2D)]
    dense = [layer.units for layer in student.layers if isinstance(layer, keras.layers.Dense)]
    assert convs == [8, 16] and dense == [32, 10]
    assert 0.2 < m["student_params"] / m["teacher_params"] < 0.3
    assert m["student_params"] == student.count_params() and m["teacher_params"] == teacher.count_params()
    assert m["student_accuracy_distilled"] >= 85
    assert m["student_accuracy_labels_only"] >= 85
    assert m["teacher_accuracy"] >= 95
    assert (m["mode"], m["temperature"], m["alpha"], m["width"], m["epochs"]) == ("soft", 4.0, 0.1, 0.5, 5)
    assert all(np.array_equal(a, b) for a, b in zip(before, teacher.get_weights())), "the teacher was modified"


def test_distill_hard_uses_teacher_labels(demo, constant_teacher):
    result = get_stage("distill")({"width": 0.5, "mode": "hard", "epochs": 3}).apply(constant_teacher,
                                                                             make_ctx(demo, 1))
    share = (result.model.predict(demo.eval.x, verbose=0).argmax(1) == 3).mean()
    assert share >= 0.95
    assert result.metrics["student_accuracy_labels_only"] >= 80


def test_distill_soft_alpha0_follows_teacher_not_labels(demo, constant_teacher):
    result = get_stage("distill")({"width": 0.5, "alpha": 0.0, "epochs": 3}).apply(constant_teacher,
                                                                             make_ctx(demo, 1))
    share = (result.model.predict(demo.eval.x, verbose=0).argmax(1) == 3).mean()
    assert share >= 0.9
    assert result.metrics["student_accuracy_distilled"] <= 20
    assert result.metrics["student_accuracy_labels_only"] >= 80


def test_distill_has_its_own_epochs_default():
    from exporter.stages.distill import DEFAULT_EPOCHS

    config = get_stage("distill")({"width": 0.5}).config
    assert config.epochs == DEFAULT_EPOCHS == 25     # not the stages' 3 fine-tuning epochs
    assert (config.temperature, config.alpha) == (4.0, 0.1)


def test_labels_only_note_only_when_labels_alone_win():
    from exporter.stages.distill import labels_only_note

    assert labels_only_note(94.1, 95.3) == ("distill: the student trained on labels alone scored 95.3 % vs "
                                            "94.1 % distilled; distillation did not help here")
    assert labels_only_note(95.3, 94.1) is None and labels_only_note(95.0, 95.0) is None
    assert labels_only_note(None, 95.0) is None


def test_distill_notes_when_labels_alone_win(demo, teacher, monkeypatch):
    from exporter.stages import distill

    real = distill.training.accuracy
    scores = iter([98.6, 94.1, 95.3])     # teacher, distilled, labels only (the order of the metrics)
    monkeypatch.setattr(distill.training, "accuracy", lambda model, data: next(scores))
    result = get_stage("distill")({"width": 0.5, "epochs": 1}).apply(teacher, make_ctx(demo, 1))
    monkeypatch.setattr(distill.training, "accuracy", real)
    assert result.metrics["student_accuracy_labels_only"] == 95.3
    assert result.notes[-1] == ("distill: the student trained on labels alone scored 95.3 % vs 94.1 % distilled; "
                                "distillation did not help here")


def test_run_stages_forwards_stage_prefixed_notes(monkeypatch):
    from exporter import pipeline, steps
    from exporter.stages.training import TrainingConfig as Training

    records = [{"stage": "distill", "skipped": [], "notes": ["student (width 0.5): …", "distill: did not help"]},
               {"stage": "qat", "skipped": [], "notes": ["QAT scheme default"]}]
    monkeypatch.setattr(pipeline, "run_stages", lambda *a, **k: (None, b"", records))

    class Stub:
        recipe = type("R", (), {"training": Training(), "skip_layers": []})()
        profile, stages = None, []

    inputs = type("I", (), {"train": None, "eval": None, "mode": "int8", "signature": None,
                            "loaded": type("L", (), {"model": None})()})()
    config = type("C", (), {"mode": "int8"})()
    _, _, _, notes = steps._run_stages(Stub(), inputs, config, None)
    assert notes == ["distill: did not help"]


@pytest.mark.parametrize("config", [{"width": 0.5, "student": "s.keras"}, {}, {"width": 0.5, "temperature": 0},
                                    {"width": 0.5, "alpha": 1.5}, {"width": 1.5}, {"width": 0.5, "mode": "x"}])
def test_distill_config_errors(config):
    with pytest.raises(ConfigError):
        get_stage("distill")(config)


def test_distill_student_from_file(demo, teacher, keras, tmp_path):
    keras.utils.set_random_seed(5)
    small = keras.Sequential([keras.layers.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, activation="relu"),
                              keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
    path = tmp_path / "student.keras"
    small.save(path)
    result = get_stage("distill")({"student": str(path), "epochs": 2}).apply(teacher, make_ctx(demo, 1))
    assert result.model.count_params() == small.count_params() == result.metrics["student_params"]
    assert result.metrics["epochs"] == 2 and result.metrics["width"] is None
    assert result.metrics["student_accuracy_distilled"] > 30


def test_distill_student_with_other_classes_is_refused(demo, teacher, tiny_keras_file):
    with pytest.raises(ConfigError, match="3 output classes"):
        get_stage("distill")({"student": str(tiny_keras_file)}).apply(teacher, make_ctx(demo, 1))


def test_epochs_flag_reaches_the_distill_stage_too():
    """`--epochs` is never silently ignored: the student trains for it instead of its own default."""
    from exporter.recipe import recipe_from_flags

    recipe = recipe_from_flags(distill=0.5, qat=True, training={"epochs": 4})
    assert recipe.build()[0].config.epochs == 4
    assert recipe_from_flags(distill=0.5).build()[0].config.epochs == 25
