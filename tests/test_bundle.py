"""Bundles: atomic writes that survive interruption, and verification of every byte."""
import hashlib
import json
import signal
import subprocess
import sys
import zipfile

import pytest

from exporter import bundle as bundle_mod
from exporter.bundle import verify_bundle, write_bundle
from exporter.errors import IntegrityError, UsageError


def snapshot(path):
    return {p.relative_to(path).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture
def old_bundle(tmp_path):
    out = tmp_path / "b"
    write_bundle(out, {"model.tflite": b"old model", "report.md": b"# old\n"}, {"status": "pass"})
    return out


def test_written_bundle_verifies(old_bundle):
    manifest = json.loads((old_bundle / "manifest.json").read_text())
    assert manifest["schema_version"] == 1
    assert manifest["files"]["model.tflite"] == {"sha256": hashlib.sha256(b"old model").hexdigest(), "bytes": 9}
    assert verify_bundle(old_bundle)["files"] == 2


@pytest.mark.parametrize("tamper,expected", [
    (lambda b: (b / "model.tflite").write_bytes(b"old modeL"), "changed file: model.tflite"),
    (lambda b: (b / "report.md").unlink(), "missing file: report.md"),
    (lambda b: (b / "evil.sh").write_text("rm -rf /"), "extra file: evil.sh"),
    (lambda b: (b / "manifest.json").write_text("{not json"), "not valid JSON"),
])
def test_verify_names_the_bad_file(old_bundle, tamper, expected):
    tamper(old_bundle)
    with pytest.raises(IntegrityError) as err:
        verify_bundle(old_bundle)
    assert expected in str(err.value) and err.value.exit_code == 3


def test_flipped_byte_is_caught(old_bundle):
    path = old_bundle / "model.tflite"
    data = bytearray(path.read_bytes())
    data[3] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="model.tflite"):
        verify_bundle(old_bundle)


def test_replacing_keeps_no_temp_files(old_bundle):
    write_bundle(old_bundle, {"model.tflite": b"new"}, {"status": "pass"})
    assert snapshot(old_bundle).keys() == {"model.tflite", "manifest.json"}
    assert [p.name for p in old_bundle.parent.iterdir()] == ["b"]


def test_interrupt_mid_write_leaves_earlier_bundle_intact(old_bundle, monkeypatch):
    before = snapshot(old_bundle)
    real = bundle_mod._write_file
    calls = []

    def interrupted(path, data):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real(path, data)

    monkeypatch.setattr(bundle_mod, "_write_file", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_bundle(old_bundle, {"model.tflite": b"new", "report.md": b"new"}, {"status": "pass"})
    assert snapshot(old_bundle) == before
    assert [p.name for p in old_bundle.parent.iterdir()] == ["b"], "temp dir removed"


def test_sigkill_mid_write_leaves_earlier_bundle_intact(old_bundle):
    before = snapshot(old_bundle)
    script = f"""
import os, signal
from exporter import bundle
real = bundle._write_file
def killer(path, data):
    real(path, data)
    os.kill(os.getpid(), signal.SIGKILL)
bundle._write_file = killer
bundle.write_bundle(bundle.Path({str(old_bundle)!r}), {{"model.tflite": b"new", "report.md": b"new"}}, {{}})
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    assert snapshot(old_bundle) == before
    write_bundle(old_bundle, {"model.tflite": b"next"}, {})     # the next export cleans the stale temp dir
    assert [p.name for p in old_bundle.parent.iterdir()] == ["b"]


def test_refuses_to_replace_a_directory_that_is_not_a_bundle(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(UsageError, match="not an edgex bundle"):
        write_bundle(tmp_path, {"model.tflite": b"x"}, {})
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_zip_holds_the_same_files(tmp_path):
    out = write_bundle(tmp_path / "z", {"model.tflite": b"m", "labels.txt": b"a\n"}, {}, make_zip=True)
    with zipfile.ZipFile(out.with_suffix(".zip")) as archive:
        assert sorted(archive.namelist()) == ["labels.txt", "manifest.json", "model.tflite"]
        assert archive.read("model.tflite") == b"m"


@pytest.fixture
def archive(tmp_path):
    out = write_bundle(tmp_path / "z", {"model.tflite": b"model" * 100, "report.md": b"# r\n"}, {}, make_zip=True)
    return out.with_suffix(".zip")


def rewrite(src, dst, mutate):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = mutate(info, zin.read(info))
            if data is not None:
                zout.writestr(info, data)


def test_archive_verifies_in_memory(archive):
    assert verify_bundle(archive)["files"] == 2


@pytest.mark.parametrize("make,message", [
    (lambda z, d: setattr(z, "filename", "../evil.sh") or d if z.filename == "report.md" else d, "escapes"),
    (lambda z, d: setattr(z, "filename", "/etc/passwd") or d if z.filename == "report.md" else d, "absolute"),
    (lambda z, d: b"model" * 99 + b"modeL" if z.filename == "model.tflite" else d, "changed file: model.tflite"),
    (lambda z, d: None if z.filename == "report.md" else d, "missing file: report.md"),
])
def test_hostile_or_damaged_archives_are_refused(archive, tmp_path, make, message):
    bad = tmp_path / "bad.zip"
    rewrite(archive, bad, make)
    with pytest.raises(IntegrityError, match=message):
        verify_bundle(bad)
    assert not (tmp_path / "evil.sh").exists()


def test_symlink_member_is_refused(archive, tmp_path):
    bad = tmp_path / "link.zip"
    rewrite(archive, bad, lambda z, d: d)
    with zipfile.ZipFile(bad, "a") as z:
        info = zipfile.ZipInfo("link")
        info.external_attr = (0o120777) << 16
        z.writestr(info, "/etc/passwd")
    with pytest.raises(IntegrityError, match="symlink"):
        verify_bundle(bad)


def test_zip_bomb_is_refused_by_declared_ratio(tmp_path):
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("manifest.json", b"{}")
        z.writestr("model.tflite", b"\0" * (50 << 20))
    with pytest.raises(IntegrityError, match="zip bomb"):
        verify_bundle(bomb)
