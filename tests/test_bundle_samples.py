"""Lean bundles: the eval samples a bundle carries for device runs are capped (1 MB) or counted (--bundle-samples)."""
import io
import json
import zipfile

import numpy as np
import pytest

import exporter
from exporter.bundle_samples import DEFAULT_CAP_BYTES, balanced_order, choose_samples, samples_note
from exporter.data import Dataset
from exporter.errors import UsageError
from tests.test_cli import run

SAMPLES = "agent/eval_samples.npz"


def _y(npz_bytes: bytes) -> np.ndarray:
    with np.load(io.BytesIO(npz_bytes)) as data:
        return data["y"]


def test_balanced_order_takes_the_classes_in_turn():
    y = np.array([2, 2, 2, 0, 2, 1, 0])
    assert balanced_order(y).tolist() == [3, 5, 0, 6, 1, 2, 4]      # 0, 1, 2, then 0, 2, then 2, 2
    assert sorted(balanced_order(np.arange(5) % 2).tolist()) == list(range(5))


def test_the_cap_keeps_as_many_as_fit_class_balanced_and_deterministic():
    rng = np.random.default_rng(0)
    x = rng.random((300, 16, 16, 3), dtype=np.float32)        # 3,072 B per sample
    y = np.repeat(np.arange(3), 100)                           # sorted: a first-N cut would keep class 0 only
    ds = Dataset(x, y, "eval")
    choice = choose_samples(ds, cap_bytes=100_000)
    record = choice.record
    assert len(choice.data) <= 100_000 and record["bytes"] == len(choice.data)
    assert record["kept"] == 32 == (100_000 - 1_000) // (3_072 + 8) and record["of"] == 300   # headers < 1 KB
    assert record["by"] == "cap" and record["cap_bytes"] == 100_000 and record["per_sample_bytes"] == 3_080
    kept = _y(choice.data)
    assert np.bincount(kept).tolist() == [11, 11, 10] and kept[:3].tolist() == [0, 1, 2]
    assert _y(choose_samples(ds, cap_bytes=100_000).data).tolist() == kept.tolist()      # same samples again
    whole = choose_samples(ds)                                    # 924 KB: all fit in 1 MB, in data order
    assert whole.record["kept"] == 300 and _y(whole.data).tolist() == y.tolist()
    assert "holds all 300 labelled eval samples" in samples_note(whole.record)


def test_a_count_overrides_the_cap_and_zero_keeps_none():
    ds = Dataset(np.zeros((50, 600, 600, 3), np.float32), np.arange(50) % 5, "eval")     # 4.3 MB per sample
    capped = choose_samples(ds)
    assert capped.data is None and capped.record["kept"] == 0 and capped.record["cap_bytes"] == DEFAULT_CAP_BYTES
    assert "more than the 1 MB cap (1,000,000 B); bundle_samples=N keeps N anyway" in samples_note(capped.record)
    two = choose_samples(ds, count=2)
    assert two.record["kept"] == 2 and two.record["by"] == "flag" and _y(two.data).tolist() == [0, 1]
    assert samples_note(two.record).startswith(f"device-run samples: {SAMPLES} holds 2 of the 50 labelled")
    none = choose_samples(ds, count=0)
    assert none.data is None and none.record["kept"] == 0 and "(bundle_samples=0)" in samples_note(none.record)
    unlabelled = choose_samples(Dataset(np.zeros((4, 2), np.float32), None, "eval"), count=3)
    assert unlabelled.data is None and unlabelled.record["by"] == "no labels"
    assert choose_samples(None).record is None and samples_note(None) is None


def test_a_bad_count_is_refused_before_any_work(tmp_path):
    with pytest.raises(UsageError, match=r"bundle_samples=-1: give a whole number"):
        exporter.export(demo=True, out=tmp_path / "a", bundle_samples=-1, progress=False)
    result = run(["export", "--demo", "--out", str(tmp_path / "b"), "--bundle-samples", "-1"])
    assert result.exit_code == 2 and "--bundle-samples" in result.output
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_bundle_samples_5_keeps_5_in_the_bundle_its_zip_and_every_report(demo, tmp_path):
    out = tmp_path / "five"
    result = run(["export", "--demo", "--out", str(out), "--zip", "--bundle-samples", "5", "--json"])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    record = report["bundle_samples"]
    assert record["kept"] == 5 and record["of"] == 360 and record["by"] == "flag" and record["requested"] == 5
    note = f"device-run samples: {SAMPLES} holds 5 of the 360 labelled eval samples"
    assert any(n.startswith(note) and "as --bundle-samples 5 asked" in n for n in report["notes"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["bundle_samples"] == record and manifest["files"][SAMPLES]["bytes"] == record["bytes"]
    assert note in (out / "report.md").read_text() and note in (out / "report.html").read_text()
    with np.load(out / SAMPLES) as data:
        assert len(data["y"]) == len(data["x"]) == len(data["ref"]) == 5 and len(set(data["y"].tolist())) == 5
    with zipfile.ZipFile(tmp_path / "five.zip") as archive:
        assert len(_y(archive.read(SAMPLES))) == 5
    assert exporter.verify(out)["status"] == "pass"
    assert run(["verify", str(tmp_path / "five.zip")]).exit_code == 0


@pytest.fixture(scope="module")
def mobilenet(keras, tmp_path_factory):
    """An untrained MobileNetV2 (alpha 0.35, 96x96x3: 110,592 B per float sample) with 64 labelled eval samples."""
    root = tmp_path_factory.mktemp("mnv2")
    keras.utils.set_random_seed(0)
    keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, weights=None, classes=10).save(
        root / "mnv2.keras")
    x = np.random.default_rng(0).random((64, 96, 96, 3), dtype=np.float32)
    np.savez(root / "calib.npz", x=x[:32])
    np.savez(root / "eval.npz", x=x, y=np.arange(64) % 10)
    return root


def test_a_mobilenet_bundle_is_under_2_mb_besides_the_model(mobilenet, tmp_path):
    out = tmp_path / "mnv2"
    result = run(["export", str(mobilenet / "mnv2.keras"), "--calib", str(mobilenet / "calib.npz"),
                  "--eval", str(mobilenet / "eval.npz"), "--out", str(out), "--zip"])
    assert result.exit_code == 0, result.stderr
    sizes = {p.relative_to(out).as_posix(): p.stat().st_size for p in out.rglob("*") if p.is_file()}
    assert sum(size for name, size in sizes.items() if name != "model.tflite") < 2_000_000, sizes
    assert sizes[SAMPLES] <= DEFAULT_CAP_BYTES
    record = json.loads((out / "manifest.json").read_text())["bundle_samples"]
    assert record["kept"] == 9 and record["of"] == 64 and record["by"] == "cap"        # 9 x 110,600 B fit in 1 MB
    assert "holds 9 of the 64 labelled eval samples" in result.stdout and "no more fit in the 1 MB cap" in result.stdout
    assert "--bundle-samples N keeps N instead" in (out / "report.md").read_text()
    with np.load(out / SAMPLES) as data:
        assert data["y"].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8]                          # one of each class first
    assert run(["verify", str(out)]).exit_code == 0 and run(["verify", f"{out}.zip"]).exit_code == 0
    device = run(["hil", "run", str(out), "--device", "local", "--eval-samples", "50", "--runs", "3", "--json"])
    assert device.exit_code == 0, device.output
    stored = json.loads(device.stdout)
    assert stored["result"]["eval_samples"] == 9
    assert ("asked for 50 eval samples (--eval-samples), ran 9: the bundle holds 9 (the export kept 9 of 64 eval "
            "samples: the 1 MB cap; re-export with --bundle-samples N to keep more)") in stored["notes"]
    assert "on the same 9 samples" in stored["measurements"]["accuracy_drop"]["note"]
