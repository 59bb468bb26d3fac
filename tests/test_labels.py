"""`--labels` files: bounded reads of regular UTF-8 files, one unique, non-empty class name per line."""
import os

import pytest

from exporter.data import MAX_LABELS_BYTES, load_labels
from exporter.errors import DataError


def write(tmp_path, data: bytes, name="labels.txt"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_names_trailing_blank_lines_and_bom(tmp_path):
    assert load_labels(write(tmp_path, "\ufeffcat\r\ndog\nbird\n\n\n".encode())) == ["cat", "dog", "bird"]
    assert load_labels(write(tmp_path, "zébu\tgrey\n".encode())) == ["zébu\tgrey"]


@pytest.mark.reliability(40)
@pytest.mark.timeout(20)
def test_fifo_device_and_directory_are_refused_without_hanging(tmp_path):
    os.mkfifo(tmp_path / "fifo.txt")
    os.symlink("/dev/zero", tmp_path / "zero.txt")
    for name, kind in (("fifo.txt", "a FIFO"), ("zero.txt", "a device"), (".", "a directory")):
        with pytest.raises(DataError, match=f"must be a regular file, not {kind}") as err:
            load_labels(tmp_path / name)
        assert err.value.exit_code == 2


def test_missing_and_oversized_files(tmp_path):
    with pytest.raises(DataError, match="cannot read labels file"):
        load_labels(tmp_path / "missing.txt")
    big = write(tmp_path, b"class\n" * (MAX_LABELS_BYTES // 6 + 1))
    with pytest.raises(DataError, match="larger than 1,048,576 bytes"):
        load_labels(big)


@pytest.mark.parametrize("data,message", [
    (b"cat\ndo\xffg\n", "line 2: labels file is not UTF-8"),
    (b"\n\n", "labels file is empty"),
    (b"cat\n\ndog\n", "line 2: empty class name"),
    (b"cat\n   \ndog\n", "line 2: empty class name"),
    (b"cat\ndog\ncat\n", "line 3: class name 'cat' repeats line 1"),
    (b"cat\nd\x00g\n", "line 2: class name holds a control character"),
])
def test_bad_labels_name_the_line(tmp_path, data, message):
    with pytest.raises(DataError, match=message) as err:
        load_labels(write(tmp_path, data))
    assert err.value.exit_code == 2
