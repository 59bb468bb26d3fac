"""Round trips: convert → load in LiteRT → infer, for every conversion mode and int8 I/O dtype."""
import numpy as np
import pytest

from exporter.analysis.graph import Graph
from exporter.errors import ConversionError, DataError
from exporter.litert import LiteRTRunner
from exporter.stages.convert import ConvertConfig, convert

MODES = [("float32", "float32"), ("float16", "float32"), ("dynamic", "float32"),
         ("int8", "int8"), ("int8", "uint8"), ("int8", "float32"), ("int16x8", "float32")]


@pytest.fixture(scope="module")
def reference(tiny_model, tiny_data):
    return tiny_model.predict(tiny_data[0], verbose=0)


@pytest.mark.parametrize("mode,io", MODES)
def test_round_trip(tiny_model, tiny_data, reference, mode, io):
    x = tiny_data[0]
    data = convert(tiny_model, ConvertConfig(mode=mode, io_dtype=io), calib=x)
    runner = LiteRTRunner(data)
    assert list(runner.input["shape"]) == [1, 8, 8, 1], "batch is fixed to 1"
    assert np.dtype(runner.input["dtype"]).name == io
    out = runner.predict(x)
    assert out.shape == reference.shape
    tolerance = {"float32": 1e-5, "float16": 1e-2, "dynamic": 5e-2, "int8": 5e-2, "int16x8": 5e-2}[mode]
    assert np.abs(out - reference).max() < tolerance
    graph = Graph.from_bytes(data)
    if mode == "int8":
        assert all(op.compute_dtype in ("int8", "uint8") for op in graph.ops if op.macs)
    if mode == "int16x8":     # int16 activations, int8 weights
        assert all(op.compute_dtype == "int16" for op in graph.ops if op.macs)
        assert {graph.tensors[i].dtype for op in graph.ops if op.macs for i in op.inputs[1:2]} == {"int8"}
    if mode == "float16":
        assert any(t.dtype == "float16" and t.is_constant for t in graph.tensors)


def test_int16_activations_follow_the_keras_model_closer_than_int8(tiny_model, tiny_data, reference):
    x = tiny_data[0]
    error = {mode: np.abs(LiteRTRunner(convert(tiny_model, ConvertConfig(mode=mode, io_dtype="float32"), calib=x))
                          .predict(x) - reference).max() for mode in ("int8", "int16x8")}
    assert error["int16x8"] < error["int8"] / 2, error      # measured: 0.00087 against 0.00266


def test_dynamic_range_quantizes_large_weights(keras, tiny_data):
    # TFLite leaves weights under 1024 elements in float; a 144x64 dense layer is quantized.
    model = keras.Sequential([keras.layers.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(64)])
    graph = Graph.from_bytes(convert(model, ConvertConfig(mode="dynamic")))
    assert [op.compute_dtype for op in graph.ops if op.name == "FULLY_CONNECTED"] == ["hybrid"]
    assert any(t.dtype == "int8" and t.is_constant for t in graph.tensors)


def test_int8_sizes_shrink(tiny_model, tiny_data):
    sizes = {m: len(convert(tiny_model, ConvertConfig(mode=m, io_dtype="int8"), calib=tiny_data[0]))
             for m in ("float32", "int8")}
    assert sizes["int8"] < sizes["float32"]


@pytest.mark.reliability(13)
def test_too_few_calibration_samples_is_an_error(tiny_model, tiny_data):
    with pytest.raises(DataError, match="at least 32"):
        convert(tiny_model, ConvertConfig(mode="int8"), calib=tiny_data[0][:5])
    with pytest.raises(DataError):
        convert(tiny_model, ConvertConfig(mode="int8"), calib=None)
    with pytest.raises(DataError, match="int16x8 needs at least 32 calibration samples"):
        convert(tiny_model, ConvertConfig(mode="int16x8"), calib=tiny_data[0][:5])


@pytest.mark.reliability(16)
def test_unsupported_op_fails_with_exit_4_listing_it(keras):
    tf = __import__("exporter.tf", fromlist=["tensorflow"]).tensorflow()

    class Determinant(keras.layers.Layer):
        def call(self, x):
            return tf.reshape(tf.linalg.det(tf.reshape(x, (-1, 4, 4))), (-1, 1))

    model = keras.Sequential([keras.layers.Input((16,)), Determinant()])
    with pytest.raises(ConversionError) as err:
        convert(model, ConvertConfig(mode="float32"))
    assert err.value.exit_code == 4
    assert "MatrixDeterminant" in str(err.value)


@pytest.mark.parametrize("mode", ["float32", "int8"])
def test_converting_with_only_the_variables_read_gives_the_bytes_of_the_whole_model(tiny_model, tiny_data, mode,
                                                                                     monkeypatch):
    """The converter saves a SavedModel of the object it is given first: edgex gives it only the variables the
    function reads (much faster on large models), which must not change a byte, TF-MOT wrappers included."""
    from exporter import tf as tfmod
    from exporter.stages import convert as convert_module

    quantize_model = tfmod.tfmot().quantization.keras.quantize_model
    config = ConvertConfig(mode=mode, io_dtype="int8" if mode == "int8" else "float32")
    for model in (tiny_model, quantize_model(tiny_model)):
        ours = convert(model, config, calib=tiny_data[0])
        with monkeypatch.context() as patch:
            patch.setattr(convert_module, "_variables_of", lambda tf, function, model=model: model)
            whole = convert(model, config, calib=tiny_data[0])
        assert ours == whole and len(ours) > 1000
