"""TFLM weight compression of microcontroller bundles: the spec chooser, the bit-exactness proof, the export."""
import dataclasses
import json
import re

import numpy as np
import pytest

import exporter
from exporter.analysis.graph import Graph
from exporter.errors import UsageError
from targets.microcontroller.compression import compress_for_tflm, random_samples
from targets.microcontroller.compression_spec import choose
from tests.test_cli import run

PER_TENSOR = {"scale": [0.02], "zero_point": [0], "quantized_dimension": 0}


def per_channel(n, axis=0):
    return {"scale": [0.01] * n, "zero_point": [0] * n, "quantized_dimension": axis}


# --- the spec chooser ---------------------------------------------------------------------------------------

def test_a_per_tensor_quantized_kernel_never_gets_a_per_channel_table():
    """Issue 14's trap: 16 values per tensor, 2 per channel; the table must still be one per tensor."""
    kernel = np.repeat(np.arange(-8, 8, dtype=np.int8).reshape(4, 4), 16, axis=1)    # [4, 64]: 4 values a row
    assert max(np.unique(row).size for row in kernel) <= 4 < np.unique(kernel).size
    plan = choose(5, "dense", kernel, PER_TENSOR)
    assert (plan.status, plan.table, plan.axis, plan.bits) == ("candidate", "per-tensor", None, 4)
    for q in (None, {"scale": [0.02], "zero_point": [0], "quantized_dimension": 1}):   # one scale: per tensor too
        assert choose(5, "dense", kernel, q).table == "per-tensor"


def test_a_per_channel_quantized_kernel_gets_tables_along_its_quantized_dimension():
    kernel = np.tile(np.array([-3, 0, 3, 7], dtype=np.int8), (8, 3, 3, 4))     # 4 values in every output channel
    kernel[0, 0, 0, 0] = 100                                                   # 5 in channel 0: 3 bits
    plan = choose(1, "conv", kernel, per_channel(8))
    assert (plan.table, plan.axis, plan.bits, plan.uniques_per_channel) == ("per-channel (axis 0)", 0, 3, 5)
    assert plan.bytes_after == -(-kernel.size * 3 // 8) + 16 + 8 * 5
    depthwise = np.moveaxis(kernel, 0, 3).copy()                               # [1, kh, kw, out]: the last axis
    assert choose(2, "dw", depthwise, per_channel(8, axis=3)).table == "per-channel (axis 3)"
    skipped = choose(3, "odd", np.moveaxis(kernel, 0, 1).copy(), per_channel(8, axis=1))
    assert skipped.status == "skipped" and "axis 0 or the last only" in skipped.reason


def test_tensors_that_would_grow_or_have_too_many_values_are_skipped():
    bias = choose(4, "bias", np.arange(16, dtype=np.int32), per_channel(16))  # one value per channel, int32
    assert bias.status == "skipped" and bias.reason.startswith("would grow: 64 B ->") and bias.bits is None
    noisy = choose(6, "noisy", np.arange(-128, 128, dtype=np.int16).reshape(16, 16), PER_TENSOR)
    assert noisy.status == "skipped" and "256 unique values in the tensor: more than 2**7" in noisy.reason
    uint8 = choose(7, "u8", np.zeros((4, 4), np.uint8), PER_TENSOR)
    assert uint8.status == "skipped" and "no uint8 look-up tables" in uint8.reason


# --- the proof on TFLM --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def snapped(demo, keras, tmp_path_factory):
    """The demo CNN with every kernel snapped to 16 values per tensor, as .keras and as int8 .tflite."""
    from exporter.model_io import load_model

    model = keras.models.clone_model(load_model(demo.model_path).model)
    model.set_weights(load_model(demo.model_path).model.get_weights())
    for layer in model.layers:
        if layer.get_weights() and layer.get_weights()[0].ndim >= 2:
            kernel, *rest = layer.get_weights()
            levels = np.linspace(kernel.min(), kernel.max(), 16)
            layer.set_weights([levels[np.abs(kernel[..., None] - levels).argmin(-1)].astype(kernel.dtype), *rest])
    path = tmp_path_factory.mktemp("snapped") / "snapped.keras"
    model.save(path)
    return path, _per_tensor_int8(model, demo.calib.x)


def _per_tensor_int8(model, calib):
    """Full-integer int8 with every kernel quantized per tensor, as QAT leaves Dense kernels (the issue's case).

    `_experimental_disable_per_channel` is the TFLite converter's switch for per-tensor weight quantization.
    """
    from exporter import tf as tfmod

    tf = tfmod.tensorflow()
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([x[None].astype(np.float32)] for x in calib[:100])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    converter._experimental_disable_per_channel = True
    return converter.convert()


def _samples(tflite, demo, n=100):
    quantization = Graph.from_bytes(tflite).input_details()[0].quantization
    scale, zero = quantization["scale"][0], quantization["zero_point"][0]
    return [np.clip(np.round(demo.eval.x[:n] / scale + zero), -128, 127).astype(np.int8)]


def test_the_proof_catches_a_per_channel_table_on_a_per_tensor_kernel(snapped, demo):
    """Force the trap's spec: it runs on TFLM without an error, the proof sees the outputs differ and drops it."""
    _, tflite = snapped
    samples = _samples(tflite, demo)
    good = compress_for_tflm(tflite, samples, description="100 eval samples")
    dense = next(p for p in good.plans if p.shape == (64, 512))
    assert dense.quantization == "per-tensor" and dense.status == "compressed" and dense.table == "per-tensor"
    assert (good.identical, good.total) == (100, 100) and len(good.tflite) < len(tflite) * 0.7
    assert "CUSTOM:TFLM_DECODE" in {op.name for op in Graph.from_bytes(good.tflite).ops}

    per_channel_uniques = dense.uniques_per_channel
    bad = dataclasses.replace(dense, status="candidate", table="per-channel (axis 0)", axis=0,
                              bits=max(1, (per_channel_uniques - 1).bit_length()))
    forced = [bad if p.index == dense.index else p for p in good.plans if p.status == "compressed" or p is dense]
    forced = [dataclasses.replace(p, status="candidate") for p in forced]
    caught = compress_for_tflm(tflite, samples, plans=forced)
    verdict = next(p for p in caught.plans if p.index == dense.index)
    assert verdict.status == "dropped" and re.search(r"differed .* on [\d,]+ of 100 samples on TFLM", verdict.reason)
    assert (caught.identical, caught.total) == (100, 100)       # what ships is proved: the others kept, bit-exact
    assert [p.index for p in caught.plans if p.status == "compressed"] == \
        [p.index for p in good.plans if p.status == "compressed" and p.index != dense.index]


def test_a_model_with_nothing_to_gain_stays_as_it_is(tiny_tflite):
    result = compress_for_tflm(tiny_tflite, random_samples(Graph.from_bytes(tiny_tflite), 4))
    assert not result.compressed and result.tflite == tiny_tflite and result.total == 4
    assert all(p.status == "skipped" and p.reason for p in result.plans)


# --- the export -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def exports(snapped, demo, tmp_path_factory):
    """The snapped model exported for the Nano 33 BLE with and without compression (no training)."""
    path, _ = snapped
    root = tmp_path_factory.mktemp("lut")
    kw = dict(target="microcontroller", calib=demo.calib.x, eval=(demo.eval.x, demo.eval.y), progress=False)
    on = exporter.export(path, out=root / "on", **kw)
    off = exporter.export(path, out=root / "off", target_options={"compress": False}, **kw)
    return (on, root / "on"), (off, root / "off")


def test_compressed_bundle_figures_and_sources(exports):
    (report, out), _ = exports
    m = report.measurements
    assert m["model_flash"].source == m["model_flash_uncompressed"].source == "measured"
    assert m["model_flash"].value < m["model_flash_uncompressed"].value / 1.5
    assert m["compression_bit_exact"].value == 100.0 and "360/360 samples" in m["compression_bit_exact"].note
    assert m["arena"].value > m["arena_uncompressed"].value           # the decoded weights live in the arena
    assert report.passed and exporter.verify(out)["status"] == "pass"
    resolver = (out / "mcu" / "op_resolver.h").read_text()
    ops = re.findall(r"resolver\.(Add\w+)\(\)", resolver)
    assert "AddDecode" in ops and f"MicroMutableOpResolver<{len(ops)}>" in resolver and "TFLM_DECODE" in resolver
    assert "USE_TFLM_COMPRESSION" in (out / "mcu" / "model_data.h").read_text()
    lib = next((out / "arduino").iterdir())
    assert "AddDecode" in (lib / "src" / "op_resolver.h").read_text()
    assert "DECODE" in (lib / "library.properties").read_text()
    data = (out / "mcu" / "model_data.h").read_text()
    assert f"_model_data_len = {m['model_flash'].value};" in data        # the C array is the compressed model


def test_report_and_manifest_list_every_tensor(exports):
    (report, out), _ = exports
    manifest = json.loads((out / "manifest.json").read_text())
    record = manifest["compression"]
    assert record == report.to_dict()["compression"] and record["bit_exact"]["identical"] == 360
    statuses = {t["name"]: t["status"] for t in record["tensors"]}
    assert "compressed" in statuses.values() and "skipped" in statuses.values()
    assert any(t["reason"].startswith("would grow") for t in record["tensors"])
    for t in record["tensors"]:
        if t["status"] == "compressed":
            assert t["bytes_after"] < t["bytes_before"] and 1 <= t["bits"] <= 7
            assert t["table"] == ("per-tensor" if t["quantization"] == "per-tensor" else t["quantization"])
    md, page = (out / "report.md").read_text(), (out / "report.html").read_text()
    assert "## Weight compression (TFLM)" in md and "Weight compression (TFLM)" in page
    assert all(name.replace("|", "\\|") in md for name in statuses)


def test_no_compress_gives_the_uncompressed_figures(exports):
    (on, _), (off, out) = exports
    assert off.measurements["model_flash"].value == on.measurements["model_flash_uncompressed"].value
    assert off.measurements["arena"].value == on.measurements["arena_uncompressed"].value
    assert "model_flash_uncompressed" not in off.measurements and "compression_bit_exact" not in off.measurements
    assert off.compression["attempted"] is False and "compress" in off.compression["reason"]
    assert "AddDecode" not in (out / "mcu" / "op_resolver.h").read_text()


def test_other_targets_refuse_the_option(tmp_path):
    for target in ("android", "ethos-u", "edgetpu"):
        with pytest.raises(UsageError, match="compress"):
            exporter.export(demo=True, target=target, target_options={"compress": False}, progress=False)
    result = run(["export", "--demo", "--target", "android", "--no-compress", "--out", str(tmp_path / "a")])
    assert result.exit_code == 2 and "compress" in result.stderr


def test_demo_with_clustering_is_bit_exact_and_smaller(demo, tmp_path):
    """The issue's CLI line, with one clustering epoch instead of prune + cluster + QAT (training is the cost)."""
    result = run(["export", "--demo", "--target", "microcontroller", "--cluster", "16", "--epochs", "1",
                  "--out", str(tmp_path / "mcu"), "--json"])
    assert result.exit_code == 0, result.stderr
    m = json.loads(result.stdout)["measurements"]
    assert m["model_flash"]["value"] * 1.5 <= m["model_flash_uncompressed"]["value"]
    assert m["compression_bit_exact"]["value"] == 100.0
