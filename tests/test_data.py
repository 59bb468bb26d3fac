import io
import os
import tempfile
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.lib import format as npformat

from exporter.data import check_input, check_labels, load_dataset, load_labels
from exporter.errors import DataError, ExporterError, UnsafeDataError


def save(tmp_path, name="d.npz", **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def test_npz_and_npy(tmp_path):
    x = np.zeros((5, 8, 8, 1), np.float32)
    ds = load_dataset(save(tmp_path, x=x, y=np.arange(5)), role="evaluation")
    assert len(ds) == 5 and ds.y.tolist() == [0, 1, 2, 3, 4]
    np.save(tmp_path / "x.npy", x)
    assert load_dataset(tmp_path / "x.npy", role="calibration").y is None


def test_one_hot_labels_become_indices(tmp_path):
    y = np.eye(3)[[2, 0, 1]]
    assert load_dataset(save(tmp_path, x=np.zeros((3, 2)), y=y), role="e").y.tolist() == [2, 0, 1]


@pytest.mark.reliability(11)
def test_object_arrays_are_refused(tmp_path):
    path = tmp_path / "obj.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(UnsafeDataError) as err:
        load_dataset(path, role="calibration")
    assert err.value.exit_code == 3


@pytest.mark.reliability(14, 15)
@pytest.mark.parametrize("x,y,message", [
    (np.zeros((0, 4), np.float32), None, "empty"),
    (np.array([[np.nan, 1.0]], np.float32), None, "NaN or Inf"),
    (np.array([[np.inf, 1.0]], np.float32), None, "NaN or Inf"),
    (np.zeros((4, 2), np.float32), np.arange(3), "has 4 samples but y has 3"),
])
def test_bad_data(tmp_path, x, y, message):
    arrays = {"x": x} if y is None else {"x": x, "y": y}
    with pytest.raises(DataError, match=message):
        load_dataset(save(tmp_path, **arrays), role="evaluation")


def test_missing_x_and_extra_arrays(tmp_path):
    with pytest.raises(DataError, match="'x'"):
        load_dataset(save(tmp_path, data=np.zeros(3)), role="calibration")
    with pytest.raises(DataError, match="unexpected arrays"):
        load_dataset(save(tmp_path, x=np.zeros(3), z=np.zeros(3)), role="calibration")


@pytest.mark.reliability(12)
def test_shape_mismatch_shows_expected_and_got(tmp_path):
    ds = load_dataset(save(tmp_path, x=np.zeros((4, 8, 8), np.float32)), role="calibration")
    with pytest.raises(DataError) as err:
        check_input(ds, shape=(None, 8, 8, 1), dtype="float32")
    assert "(4, 8, 8)" in str(err.value) and "(N, 8, 8, 1)" in str(err.value)


@pytest.mark.reliability(12)
def test_integer_data_for_float_model_is_refused(tmp_path):
    ds = load_dataset(save(tmp_path, x=np.zeros((4, 8, 8, 1), np.uint8)), role="calibration")
    with pytest.raises(DataError, match="uint8"):
        check_input(ds, shape=(None, 8, 8, 1), dtype="float32")


@pytest.mark.reliability(15)
def test_labels_out_of_range(tmp_path):
    ds = load_dataset(save(tmp_path, x=np.zeros((3, 2), np.float32), y=np.array([0, 1, 5])), role="evaluation")
    with pytest.raises(DataError, match="5"):
        check_labels(ds, 3)


def test_labels_file(tmp_path):
    (tmp_path / "l.txt").write_text("cat\ndog\n\n")
    assert load_labels(tmp_path / "l.txt") == ["cat", "dog"]
    (tmp_path / "e.txt").write_text("\n")
    with pytest.raises(DataError, match="empty"):
        load_labels(tmp_path / "e.txt")


# --- issue 9: odd labels, lying headers, garbage and non-regular files ------------------------------

def npy_bytes(shape, descr="<f4", data=b"") -> bytes:
    """A .npy whose header declares `shape` and `descr`, followed by `data` (whatever it declares)."""
    buf = io.BytesIO()
    npformat.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue() + data


def npz_of(tmp_path, name="d.npz", **members: bytes):
    path = tmp_path / name
    with zipfile.ZipFile(path, "w") as archive:
        for key, data in members.items():
            archive.writestr(f"{key}.npy", data)
    return path


X3 = np.zeros((3, 2), np.float32)


@pytest.mark.reliability(40)
@pytest.mark.parametrize("y,message", [
    (np.array(3), "y is a single value"),
    (np.array([["a", "b"]] * 3), "dtype <U1"),
    (np.array(["0", "1", "2"]), "dtype <U1"),
    (np.array([[0.2, 0.8], [0.5, 0.5], [1, 0]]), "rows are not one-hot"),
    (np.array([[2, 0], [0, 1], [1, 0]]), "rows are not one-hot"),
    (np.array([0.5, 1, 2]), "whole class indices"),
    (np.array([True, False, True]), "dtype bool"),
    (np.eye(3, dtype=bool), "dtype bool"),
    (np.zeros((3, 0)), r"got shape \(3, 0\)"),
    (np.array([1e30, 0, 1]), "out of range"),
    (np.array([1 + 0j, 0, 1]), "dtype complex128"),
])
def test_odd_label_arrays_are_data_errors(tmp_path, y, message):
    with pytest.raises(DataError, match=message) as err:
        load_dataset(save(tmp_path, x=X3, y=y), role="evaluation")
    assert err.value.exit_code == 2


def test_one_hot_and_column_labels_still_work(tmp_path):
    assert load_dataset(save(tmp_path, x=X3, y=np.eye(3, dtype=np.uint8)[[1, 2, 0]]), role="e").y.tolist() == [1, 2, 0]
    assert load_dataset(save(tmp_path, x=X3, y=np.array([[2.0], [0.0], [1.0]])), role="e").y.tolist() == [2, 0, 1]


@pytest.mark.reliability(40)
@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_huge_declared_arrays_are_refused_before_allocating(tmp_path, suffix):
    data = npy_bytes((2**40,), data=b"\0" * 64)               # 4 TiB of float32 declared
    path = tmp_path / f"huge{suffix}"
    path.write_bytes(data) if suffix == ".npy" else npz_of(tmp_path, "huge.npz", x=data)
    with pytest.raises(DataError, match="over the 8,589,934,592-byte limit"):
        load_dataset(path, role="calibration")


@pytest.mark.reliability(40)
@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_lying_headers_are_refused_before_allocating(tmp_path, suffix):
    data = npy_bytes((2**27,), data=b"\0" * 16)              # declares 512 MiB, holds 16 bytes
    path = tmp_path / f"liar{suffix}"
    path.write_bytes(data) if suffix == ".npy" else npz_of(tmp_path, "liar.npz", x=data)
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match="declares 536,870,912 bytes of array data but the file holds 16"):
            load_dataset(path, role="calibration")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 1024**2


def test_budget_covers_x_and_y_together(tmp_path, monkeypatch):
    import exporter.data

    path = save(tmp_path, x=np.zeros((100, 4), np.float32), y=np.zeros(100, np.int64))
    monkeypatch.setattr(exporter.data, "MAX_ARRAY_BYTES", 1600 + 799)
    with pytest.raises(DataError, match="y: the header declares"):
        load_dataset(path, role="training")


@pytest.mark.reliability(40)
@pytest.mark.parametrize("name,content", [
    ("garbage.npz", b"this is not a zip file at all" * 10),
    ("garbage.npy", b"this is not a numpy file" * 10),
    ("empty.npz", b""),
    ("notnpy.npz", None),
    ("negative.npy", npy_bytes((-5,))),
])
def test_garbage_is_not_a_readable_numpy_file(tmp_path, name, content):
    path = tmp_path / name
    if content is None:
        npz_of(tmp_path, name, x=b"not an npy member" * 4)
    else:
        path.write_bytes(content)
    with pytest.raises(DataError, match="not a readable numpy file") as err:
        load_dataset(path, role="evaluation")
    assert err.value.exit_code == 2


@pytest.mark.reliability(11)
def test_object_dtype_in_a_header_is_unsafe(tmp_path):
    path = npz_of(tmp_path, "obj.npz", x=npy_bytes((2,), "|O", b"\x80\x04N."))
    with pytest.raises(UnsafeDataError, match="x: holds object arrays") as err:
        load_dataset(path, role="evaluation")
    assert err.value.exit_code == 3
    with pytest.raises(UnsafeDataError):
        load_dataset(save(tmp_path, x=X3, y=np.array([1, "a", None], dtype=object)), role="evaluation")


@pytest.mark.reliability(40)
@pytest.mark.timeout(20)
def test_fifo_directory_and_device_data_are_refused_without_hanging(tmp_path):
    os.mkfifo(tmp_path / "fifo.npz")
    (tmp_path / "dir.npy").mkdir()
    os.symlink("/dev/zero", tmp_path / "zero.npy")
    for name, kind in (("fifo.npz", "a FIFO"), ("dir.npy", "a directory"), ("zero.npy", "a device")):
        with pytest.raises(DataError, match=f"must be a regular file, not {kind}"):
            load_dataset(tmp_path / name, role="calibration")


@pytest.mark.reliability(40)
def test_garbage_eval_file_exits_2_from_the_cli(tmp_path, demo, capsys):
    from exporter.cli import main

    bad = tmp_path / "eval.npz"
    bad.write_bytes(os.urandom(300))
    assert main(["export", "--demo", "--eval", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "not a readable numpy file" in err and "internal error" not in err
    assert not (tmp_path / "o").exists()


_VALID = io.BytesIO()
np.savez_compressed(_VALID, x=np.arange(24, dtype=np.float32).reshape(4, 6), y=np.arange(4))


@pytest.mark.reliability(42)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(suffix=st.sampled_from([".npy", ".npz"]), data=st.binary(max_size=600),
       flips=st.lists(st.tuples(st.integers(0, len(_VALID.getvalue()) - 1), st.integers(0, 255)), max_size=6))
def test_fuzzed_files_give_documented_errors(suffix, data, flips):
    raw = bytearray(_VALID.getvalue() if suffix == ".npz" and not data else data)
    for at, value in flips if suffix == ".npz" and not data else ():
        raw[at] = value
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"f{suffix}"
        path.write_bytes(bytes(raw))
        try:
            load_dataset(path, role="evaluation")
        except ExporterError as exc:
            assert exc.exit_code in (2, 3)
