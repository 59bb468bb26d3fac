"""Where bundles go: only edgex bundles are replaced, output problems are found before any work,
OUT.zip is named after the full OUT, temp names never collide, a full or read-only disk is exit 2.

Each failure is checked through the CLI: exit code, one message, the output path untouched and no
`.edgex-tmp-*` left beside it.
"""
import errno
import hashlib
import json
import os
import subprocess

import pytest

from exporter import bundle as bundle_mod
from exporter.bundle import write_bundle
from exporter.cli import main
from exporter.errors import UsageError

EDGEX_MANIFEST = {"format": "edgex-bundle", "format_version": 1}


def tree(path):
    """Every entry under `path` (not following symlinks): kind and content, to prove it untouched."""
    out = {}
    for p in sorted(path.rglob("*")):
        rel = p.relative_to(path).as_posix()
        if p.is_symlink():
            out[rel] = ("symlink", os.readlink(p))
        elif p.is_file():
            out[rel] = ("file", hashlib.sha256(p.read_bytes()).hexdigest())
        else:
            out[rel] = ("dir" if p.is_dir() else "other", None)
    return out


def temps(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".edgex-tmp-"))


@pytest.fixture
def export(tiny_keras_file, capsys):
    """Run `edgex export TINY --quantize float32 --out OUT ...`; return (exit code, stderr)."""
    def run(out, *args):
        capsys.readouterr()
        code = main(["export", str(tiny_keras_file), "--quantize", "float32", "--out", str(out), "--json", *args])
        return code, capsys.readouterr().err
    return run


@pytest.fixture
def no_work(monkeypatch):
    """Loading a model fails the test: output checks must come first."""
    import exporter.model_io

    def loaded(*args, **kwargs):
        raise AssertionError("a model was loaded before the output was checked")

    monkeypatch.setattr(exporter.model_io, "load_model", loaded)


@pytest.fixture
def tmpfs(tmp_path):
    """mount(name, options) → a fresh tmpfs folder, or None where mounting is not allowed."""
    mounted = []

    def mount(name, options):
        path = tmp_path / name
        path.mkdir()
        if os.geteuid() != 0:
            return None
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
        if done.returncode != 0:
            return None
        mounted.append(path)
        return path

    yield mount
    for path in mounted:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _web_app(d):
    (d / "manifest.json").write_text(json.dumps({"name": "My PWA", "start_url": "/", "icons": []}))
    (d / "index.html").write_text("<html>mine</html>")


def _old_edgex(d):
    (d / "model.tflite").write_bytes(b"m")
    files = {"model.tflite": {"sha256": hashlib.sha256(b"m").hexdigest(), "bytes": 1}}
    (d / "manifest.json").write_text(json.dumps({"tool": "edgex", "schema_version": 1, "files": files}))


def _manifest_is_a_folder(d):
    (d / "manifest.json").mkdir()
    (d / "manifest.json" / "keep.txt").write_text("mine")


def _empty_folders(d):
    (d / "src").mkdir()
    (d / "assets" / "img").mkdir(parents=True)


def _newer_edgex(d):
    (d / "manifest.json").write_text(json.dumps({**EDGEX_MANIFEST, "format_version": 2, "files": {}}))


def _tagged_but_foreign(d):
    (d / "manifest.json").write_text(json.dumps({**EDGEX_MANIFEST, "files": {}}))
    (d / "index.html").write_text("<html>mine</html>")


@pytest.mark.reliability(36, 40)
@pytest.mark.parametrize("make,message", [
    (_web_app, "manifest.json is someone else's"),
    (_old_edgex, "older edgex"),
    (_manifest_is_a_folder, "manifest.json is a directory"),
    (_empty_folders, "non-empty folder that is not an edgex bundle"),
    (_newer_edgex, "newer than this edgex"),
    (_tagged_but_foreign, "not part of it: index.html"),
])
def test_out_that_is_not_a_replaceable_bundle_is_refused_untouched(tmp_path, export, no_work, make, message):
    out = tmp_path / "app"
    out.mkdir()
    make(out)
    before = tree(out)
    code, err = export(out)
    assert code == 2 and message in err and err.count("edgex: error") == 1
    assert tree(out) == before and temps(tmp_path) == []


@pytest.mark.reliability(36)
def test_user_files_are_named_then_kept_with_force(tmp_path, export):
    out = tmp_path / "b"
    assert export(out)[0] == 0
    (out / "notes.txt").write_text("my notes")
    (out / "data").mkdir()
    (out / "data" / "x.bin").write_bytes(b"\x00\x01")
    (out / "hil").mkdir()
    (out / "hil" / "20260101T000000-pi.json").write_text('{"status": "pass"}')
    before = tree(out)
    code, err = export(out)
    assert code == 2 and "notes.txt" in err and "data/x.bin" in err and "--force" in err
    assert "hil/" not in err, "device runs are not user files"
    assert tree(out) == before and temps(tmp_path) == []
    code, err = export(out, "--force")
    assert code == 0, err
    after = tree(out)
    for kept in ("notes.txt", "data/x.bin", "hil/20260101T000000-pi.json"):
        assert after[kept] == before[kept]
    assert temps(tmp_path) == []
    assert main(["verify", str(out)]) == 3, "verify still names the files the user added"


@pytest.mark.reliability(37)
def test_zip_is_named_after_the_full_out_name(tmp_path, export, capsys):
    unrelated = tmp_path / "android-1.zip"
    unrelated.write_bytes(b"someone's release")
    out = tmp_path / "android-1.2"
    assert export(out, "--zip")[0] == 0
    assert unrelated.read_bytes() == b"someone's release"
    assert (tmp_path / "android-1.2.zip").is_file() and temps(tmp_path) == []
    assert export(out, "--zip")[0] == 0, "an edgex archive is replaced"
    capsys.readouterr()
    assert main(["verify", str(tmp_path / "android-1.2.zip")]) == 0
    assert "export status: pass" in capsys.readouterr().out


def _zip_folder(tmp_path):
    (tmp_path / "b.zip").mkdir()
    (tmp_path / "b.zip" / "keep.txt").write_text("mine")


@pytest.mark.reliability(37, 40)
@pytest.mark.parametrize("out,make,message", [
    ("b.zip", None, "already ends in .zip"),
    ("b", _zip_folder, "which is a directory"),
    ("b", lambda d: (d / "b.zip").write_bytes(b"PK not really"), "not an edgex bundle archive"),
    ("b", lambda d: (d / "b.zip").symlink_to(d / "elsewhere.zip"), "which is a symlink"),
])
def test_zip_target_problems_are_usage_errors_before_any_work(tmp_path, export, no_work, out, make, message):
    if make:
        make(tmp_path)
    before = tree(tmp_path)
    code, err = export(tmp_path / out, "--zip")
    assert code == 2 and message in err
    assert tree(tmp_path) == before


@pytest.mark.reliability(37)
def test_zip_of_someone_else_is_refused(tmp_path, export, no_work):
    import zipfile

    with zipfile.ZipFile(tmp_path / "b.zip", "w") as z:
        z.writestr("manifest.json", json.dumps({"name": "an app"}))
    before = tree(tmp_path)
    code, err = export(tmp_path / "b", "--zip")
    assert code == 2 and "not an edgex bundle archive" in err and tree(tmp_path) == before


@pytest.mark.reliability(40)
@pytest.mark.parametrize("make_out,message", [
    (lambda d: d / "notes.txt" / "b", "notes.txt is a file, not a folder"),
    (lambda d: d / "notes.txt" / "deeper" / "b", "notes.txt is a file, not a folder"),
    (lambda d: d / ("n" * 256), "over this file system's limit of 255"),
    (lambda d: d / "/".join(["p" * 200] * 25), "paths of bundles must stay under"),
    (lambda d: d / "sub" / ("n" * 256) / "b", "over this file system's limit of 255"),
    (lambda d: d / ("n" * 256) / "b", "over this file system's limit of 255"),
])
def test_bad_out_paths_are_refused_before_any_work(tmp_path, export, no_work, make_out, message):
    (tmp_path / "notes.txt").write_text("mine")
    before = tree(tmp_path)
    code, err = export(make_out(tmp_path))
    assert code == 2 and message in err
    assert tree(tmp_path) == before


@pytest.mark.reliability(40)
def test_zip_name_over_the_limit_is_refused(tmp_path, export, no_work):
    code, err = export(tmp_path / ("z" * 252), "--zip")
    assert code == 2 and "over this file system's limit" in err and list(tmp_path.iterdir()) == []


@pytest.mark.reliability(40)
def test_read_only_folder_is_refused_before_any_work(tmp_path, tmpfs, export, no_work):
    folder = tmpfs("ro", "ro,size=64k")
    if folder is None:
        if os.geteuid() == 0:            # root ignores permissions; /sys refuses new files
            folder = __import__("pathlib").Path("/sys")
        else:
            folder = tmp_path / "ro"
            folder.chmod(0o555)
    before = sorted(os.listdir(folder))
    code, err = export(folder / "b")
    assert code == 2 and f"cannot write in {folder}" in err
    assert sorted(os.listdir(folder)) == before


def _fill(folder):
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)


@pytest.mark.reliability(20, 40)
def test_full_disk_keeps_the_previous_bundle(tmp_path, tmpfs, export, monkeypatch):
    folder = tmpfs("small", "size=1m") or tmp_path / "small"
    out = folder / "b"
    assert export(out, "--zip")[0] == 0
    (out / "hil").mkdir()
    (out / "hil" / "run.json").write_text("{}")
    before, zipped = tree(out), (folder / "b.zip").read_bytes()
    if os.path.ismount(folder):
        _fill(folder)
    else:                                # no tmpfs here: the disk fills on the second file
        real, calls = bundle_mod._write_file, []

        def full(path, data):
            calls.append(path)
            if len(calls) == 2:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            real(path, data)

        monkeypatch.setattr(bundle_mod, "_write_file", full)
    code, err = export(out, "--zip")
    assert code == 2 and "no space left on device" in err and "untouched" in err
    assert tree(out) == before and (folder / "b.zip").read_bytes() == zipped
    assert temps(folder) == []


def test_check_output_plans_the_zip_and_the_runs_to_keep(tmp_path):
    from exporter.output import check_output

    out = write_bundle(tmp_path / "b", {"model.tflite": b"m"}, {})
    (out / "hil").mkdir()
    (out / "hil" / "r.json").write_text("{}")
    (out / "mine.txt").write_text("x")
    with pytest.raises(UsageError, match="mine.txt"):
        check_output(out)
    plan = check_output(out, make_zip=True, force=True)
    assert plan.zip == tmp_path / "b.zip" and plan.carry == ["hil/r.json", "mine.txt"]


@pytest.mark.reliability(36)
def test_force_never_overwrites_a_user_file_with_a_new_bundle_file(tmp_path):
    out = write_bundle(tmp_path / "b", {"model.tflite": b"m"}, {})
    (out / "labels.txt").write_text("my labels")
    before = tree(out)
    with pytest.raises(UsageError, match="labels.txt"):
        write_bundle(out, {"model.tflite": b"m", "labels.txt": b"a\n"}, {}, force=True)
    assert tree(out) == before and temps(tmp_path) == []


def test_special_files_in_a_bundle_are_refused_even_with_force(tmp_path):
    out = write_bundle(tmp_path / "b", {"model.tflite": b"m"}, {})
    os.mkfifo(out / "pipe")
    with pytest.raises(UsageError, match=r"pipe \(fifo\)"):
        write_bundle(out, {"model.tflite": b"n"}, {}, force=True)
    assert (out / "model.tflite").read_bytes() == b"m"
