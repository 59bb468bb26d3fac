import numpy as np
import pytest

from exporter.data import check_input, check_labels, load_dataset, load_labels
from exporter.errors import DataError, UnsafeDataError


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


def test_object_arrays_are_refused(tmp_path):
    path = tmp_path / "obj.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(UnsafeDataError) as err:
        load_dataset(path, role="calibration")
    assert err.value.exit_code == 3


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


def test_shape_mismatch_shows_expected_and_got(tmp_path):
    ds = load_dataset(save(tmp_path, x=np.zeros((4, 8, 8), np.float32)), role="calibration")
    with pytest.raises(DataError) as err:
        check_input(ds, shape=(None, 8, 8, 1), dtype="float32")
    assert "(4, 8, 8)" in str(err.value) and "(N, 8, 8, 1)" in str(err.value)


def test_integer_data_for_float_model_is_refused(tmp_path):
    ds = load_dataset(save(tmp_path, x=np.zeros((4, 8, 8, 1), np.uint8)), role="calibration")
    with pytest.raises(DataError, match="uint8"):
        check_input(ds, shape=(None, 8, 8, 1), dtype="float32")


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
