"""Bundles: atomic writes that survive interruption, and verification of every byte."""
import errno
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import zipfile

import pytest

from exporter import bundle as bundle_mod
from exporter.bundle import verify_bundle, write_bundle
from exporter.errors import IntegrityError, UsageError


def temps(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".edgex-tmp-"))


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
    assert manifest["format"] == "edgex-bundle" and manifest["format_version"] == 1
    assert manifest["files"]["model.tflite"] == {"sha256": hashlib.sha256(b"old model").hexdigest(), "bytes": 9}
    assert verify_bundle(old_bundle)["files"] == 2


@pytest.mark.reliability(21)
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


@pytest.mark.reliability(21)
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


@pytest.mark.reliability(20, 33)
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


@pytest.mark.reliability(20)
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


@pytest.mark.reliability(36)
def test_refuses_to_replace_a_directory_that_is_not_a_bundle(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(UsageError, match="not an edgex bundle"):
        write_bundle(tmp_path, {"model.tflite": b"x"}, {})
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_zip_holds_the_same_files(tmp_path):
    out = write_bundle(tmp_path / "z", {"model.tflite": b"m", "labels.txt": b"a\n"}, {}, make_zip=True)
    with zipfile.ZipFile(tmp_path / "z.zip") as archive:
        assert sorted(archive.namelist()) == ["labels.txt", "manifest.json", "model.tflite"]
        assert archive.read("model.tflite") == b"m"


@pytest.fixture
def archive(tmp_path):
    out = write_bundle(tmp_path / "z", {"model.tflite": b"model" * 100, "report.md": b"# r\n"}, {}, make_zip=True)
    return out.with_name("z.zip")


def rewrite(src, dst, mutate):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = mutate(info, zin.read(info))
            if data is not None:
                zout.writestr(info, data)


def test_archive_verifies_in_memory(archive):
    assert verify_bundle(archive)["files"] == 2


@pytest.mark.reliability(22)
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


@pytest.mark.reliability(22)
def test_symlink_member_is_refused(archive, tmp_path):
    bad = tmp_path / "link.zip"
    rewrite(archive, bad, lambda z, d: d)
    with zipfile.ZipFile(bad, "a") as z:
        info = zipfile.ZipInfo("link")
        info.external_attr = (0o120777) << 16
        z.writestr(info, "/etc/passwd")
    with pytest.raises(IntegrityError, match="symlink"):
        verify_bundle(bad)


@pytest.mark.reliability(23)
def test_zip_bomb_is_refused_by_declared_ratio(tmp_path):
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("manifest.json", b"{}")
        z.writestr("model.tflite", b"\0" * (50 << 20))
    with pytest.raises(IntegrityError, match="zip bomb"):
        verify_bundle(bomb)


def test_device_runs_are_carried_into_the_new_bundle(old_bundle):
    (old_bundle / "hil").mkdir()
    run = old_bundle / "hil" / "20260101T000000-pi.json"
    run.write_text('{"status": "pass"}')
    write_bundle(old_bundle, {"model.tflite": b"new"}, {"status": "pass"})
    assert run.read_text() == '{"status": "pass"}'
    assert verify_bundle(old_bundle)["runs"] == 1
    assert [p.name for p in old_bundle.parent.iterdir()] == ["b"]


def _fifo(path):
    os.mkfifo(path)


def _socket(path):
    cwd = os.getcwd()
    os.chdir(path.parent)                 # AF_UNIX paths are limited to 108 bytes
    try:
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(path.name)
        sock.close()
    finally:
        os.chdir(cwd)


def _symlink(path):
    path.symlink_to("/dev/zero")


def _folder(path):
    path.mkdir()
    (path / "inner.json").write_text("{}")


def verify_in_child(path):
    """`edgex verify PATH` in a child process: a verify that blocks fails the test instead of hanging it."""
    proc = subprocess.run([sys.executable, "-m", "exporter", "verify", str(path)], capture_output=True, text=True,
                          timeout=60)
    return proc.returncode, proc.stderr


@pytest.mark.reliability(40)
@pytest.mark.parametrize("make,kind", [(_fifo, "fifo"), (_socket, "socket"), (_symlink, "symlink"),
                                       (_folder, "directory")])
def test_verify_refuses_non_regular_device_runs_without_blocking(old_bundle, make, kind):
    (old_bundle / "hil").mkdir()
    make(old_bundle / "hil" / "x.json")
    code, err = verify_in_child(old_bundle)
    assert code == 3 and f"not a regular file in hil/: hil/x.json ({kind})" in err


@pytest.mark.reliability(40)
@pytest.mark.parametrize("name", ["manifest.json", "model.tflite", "extra"])
def test_verify_never_opens_a_fifo_in_the_bundle(old_bundle, name):
    (old_bundle / name).unlink(missing_ok=True)
    os.mkfifo(old_bundle / name)
    code, err = verify_in_child(old_bundle)
    assert code == 3 and (f"{name} (fifo)" in err or f"{name} is a fifo" in err), err


def test_device_run_that_is_not_a_json_object_fails_verify(old_bundle):
    (old_bundle / "hil").mkdir()
    (old_bundle / "hil" / "r.json").write_text("[1, 2]")
    with pytest.raises(IntegrityError, match=r"hil/r.json is not an edgex run: it is an array"):
        verify_bundle(old_bundle)


@pytest.mark.parametrize("run", ['{"measurements": 5}', '{"result": {"accuracy": "high"}}'])
def test_verify_and_hil_report_agree_on_what_a_run_is(old_bundle, run):
    from exporter.hil.run_files import load_runs

    (old_bundle / "hil").mkdir()
    (old_bundle / "hil" / "r.json").write_text(run)
    for check in (verify_bundle, load_runs):
        with pytest.raises(IntegrityError, match="is not an edgex run"):
            check(old_bundle)


def test_a_left_over_run_temporary_is_not_a_run(old_bundle):
    (old_bundle / "hil").mkdir()
    (old_bundle / "hil" / ".run-abc.json").write_text("{}")
    with pytest.raises(IntegrityError, match="unexpected file in hil/: hil/.run-abc.json"):
        verify_bundle(old_bundle)


def test_any_valid_name_works_temp_names_are_shortened(tmp_path):
    out = tmp_path / ("a" * 245)              # `.edgex-tmp-` + 245 bytes + a suffix would pass 255
    write_bundle(out, {"model.tflite": b"m"}, {"status": "pass"}, make_zip=True)
    write_bundle(out, {"model.tflite": b"n"}, {"status": "pass"}, make_zip=True)
    assert verify_bundle(out)["files"] == 1 and verify_bundle(tmp_path / ("a" * 245 + ".zip"))["status"] == "pass"
    assert temps(tmp_path) == []


@pytest.mark.reliability(20, 40)
def test_write_failure_in_the_zip_keeps_both_old_outputs(tmp_path, monkeypatch):
    out = write_bundle(tmp_path / "b", {"model.tflite": b"old"}, {}, make_zip=True)
    before, zipped = snapshot(out), (tmp_path / "b.zip").read_bytes()

    def full(*args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(bundle_mod, "_write_zip", full)
    with pytest.raises(UsageError, match="no space left on device"):
        write_bundle(out, {"model.tflite": b"new"}, {}, make_zip=True)
    assert snapshot(out) == before and (tmp_path / "b.zip").read_bytes() == zipped and temps(tmp_path) == []


def _dead_pid():
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_stale_temps_are_removed_only_for_this_exact_output_and_dead_writers(tmp_path):
    dead, alive = _dead_pid(), os.getppid()
    names = {
        f".edgex-tmp-android.{dead}.new-0badc0de": False,            # ours, writer gone: removed
        f".edgex-tmp-android.zip.{dead}.zip-0badc0de": False,        # our zip's, writer gone: removed
        ".edgex-tmp-android.zip": False,                             # the old zip temp name: removed
        f".edgex-tmp-android.{alive}.new-0badc0de": True,            # ours, writer running: kept
        f".edgex-tmp-android-lowend.{dead}.new-0badc0de": True,      # a sibling's: kept
        ".edgex-tmp-android-lowend-k2j3h4xz": True,                  # a sibling's (older edgex): kept
        f".edgex-tmp-android.1.2.{dead}.new-0badc0de": True,         # output "android.1.2": kept
    }
    for name in names:
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.tflite").write_bytes(b"in flight")
    write_bundle(tmp_path / "android", {"model.tflite": b"m"}, {}, make_zip=True)
    assert set(temps(tmp_path)) == {n for n, kept in names.items() if kept}


def test_sibling_outputs_written_at_once_leave_each_other_alone(tmp_path, monkeypatch):
    real, inner = bundle_mod._write_file, []

    def meanwhile(path, data):
        real(path, data)
        if not inner:                      # while android-lowend is being written, android is written
            inner.append(path)
            write_bundle(tmp_path / "android", {"model.tflite": b"a"}, {}, make_zip=True)

    write_bundle(tmp_path / "android-lowend", {"model.tflite": b"low"}, {}, make_zip=True)
    monkeypatch.setattr(bundle_mod, "_write_file", meanwhile)
    write_bundle(tmp_path / "android-lowend", {"model.tflite": b"low2", "report.md": b"r"}, {}, make_zip=True)
    monkeypatch.undo()
    assert verify_bundle(tmp_path / "android-lowend")["files"] == 2
    assert verify_bundle(tmp_path / "android")["files"] == 1
    assert verify_bundle(tmp_path / "android.zip")["files"] == 1
    assert temps(tmp_path) == []


@pytest.mark.reliability(20)
def test_without_renameat2_a_bundle_moved_aside_by_a_killed_run_is_put_back(tmp_path, monkeypatch):
    monkeypatch.setattr(bundle_mod, "_exchange", lambda a, b: False)
    out = write_bundle(tmp_path / "b", {"model.tflite": b"old"}, {})
    write_bundle(out, {"model.tflite": b"new"}, {})              # the two-rename path
    assert (out / "model.tflite").read_bytes() == b"new" and temps(tmp_path) == []
    (out / "hil").mkdir()
    (out / "hil" / "r.json").write_text("{}")
    aside = tmp_path / f".edgex-tmp-b.{_dead_pid()}.old-0badc0de"
    out.rename(aside)                                          # killed between the two renames
    write_bundle(out, {"model.tflite": b"newer"}, {})
    assert (out / "model.tflite").read_bytes() == b"newer" and (out / "hil" / "r.json").read_text() == "{}"
    assert temps(tmp_path) == []


@pytest.mark.reliability(40)
@pytest.mark.parametrize("path,code", [("a" * 5000, 2), ("bad\0path", 2), ("missing", 3)])
def test_verify_of_a_path_that_cannot_be_looked_up_is_not_an_internal_error(tmp_path, capsys, path, code):
    from exporter.cli import main

    assert main(["verify", str(tmp_path / path)]) == code
    err = capsys.readouterr().err
    assert err.startswith("edgex: error:") and len(err) < 400
