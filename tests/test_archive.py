"""`edgex verify` on bundle archives: damaged or odd zips and manifests give exit 3, never 70."""
import json
import struct
import zipfile

import pytest

from exporter.bundle import verify_bundle, write_bundle
from exporter.cli import main
from exporter.errors import IntegrityError


@pytest.fixture
def archive(tmp_path):
    files = {"model.tflite": bytes(range(256)) * 8, "report.md": b"# report\n" * 20, "agent/a.py": b"print(1)\n"}
    write_bundle(tmp_path / "b", files, {"status": "pass"}, make_zip=True)
    return tmp_path / "b.zip"


def verify_cli(path, capsys):
    capsys.readouterr()
    code = main(["verify", str(path)])
    return code, capsys.readouterr()


def _local_header(data: bytes, info: zipfile.ZipInfo) -> int:
    assert data[info.header_offset:info.header_offset + 4] == b"PK\x03\x04"
    return info.header_offset


def _central_header(data: bytes, name: str) -> int:
    at = data.find(b"PK\x01\x02")
    while at >= 0:
        size = struct.unpack_from("<H", data, at + 28)[0]
        if data[at + 46:at + 46 + size] == name.encode():
            return at
        at = data.find(b"PK\x01\x02", at + 1)
    raise AssertionError(name)


def _patch(path, edit):
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        infos = {i.filename: i for i in z.infolist()}
    edit(data, infos)
    path.write_bytes(bytes(data))


def _encrypted(data, infos):
    info = infos["model.tflite"]
    data[_local_header(data, info) + 6] |= 0x01
    data[_central_header(data, "model.tflite") + 8] |= 0x01


def _method(number):
    def edit(data, infos):
        info = infos["model.tflite"]
        struct.pack_into("<H", data, _local_header(data, info) + 8, number)
        struct.pack_into("<H", data, _central_header(data, "model.tflite") + 10, number)
    return edit


def _renamed_in_local_header(data, infos):
    at = _local_header(data, infos["report.md"]) + 30
    data[at:at + 9] = b"rePort.md"


def _flipped_data(data, infos):
    info = infos["model.tflite"]
    at = _local_header(data, info) + 30 + len(info.filename) + len(info.extra) + info.compress_size // 2
    data[at] ^= 0xFF


def _cut_member(data, infos):
    info = infos["model.tflite"]
    at = _local_header(data, info) + 30 + len(info.filename)
    del data[at + 10:at + 60]


def _cut_tail(data, infos):
    del data[len(data) - 30:]


@pytest.mark.reliability(40)
@pytest.mark.parametrize("edit,message", [
    (_encrypted, "encrypted member"),
    (_method(99), "compression method 99"),
    (_method(zipfile.ZIP_LZMA), "compression method 14"),
    (_renamed_in_local_header, "'report.md' cannot be read"),
    (_flipped_data, "'model.tflite' cannot be read"),
    (_cut_member, "cannot be read"),
    (_cut_tail, "not a readable zip archive"),
])
def test_damaged_archive_exits_3_with_one_line(archive, capsys, edit, message):
    _patch(archive, edit)
    code, out = verify_cli(archive, capsys)
    assert code == 3 and message in out.err
    assert len(out.err.strip().splitlines()) == 1 and "internal error" not in out.err


@pytest.mark.reliability(40)
def test_every_flipped_byte_is_refused_or_harmless(archive, tmp_path):
    """Flip each byte in turn: IntegrityError, or a pass only where every file still reads the same."""
    data = archive.read_bytes()
    with zipfile.ZipFile(archive) as z:
        original = {name: z.read(name) for name in z.namelist()}
    bad, passed = tmp_path / "flipped.zip", 0
    for at in range(len(data)):
        flipped = bytearray(data)
        flipped[at] ^= 0xFF
        bad.write_bytes(bytes(flipped))
        try:
            verify_bundle(bad)
        except IntegrityError:
            continue
        passed += 1
        with zipfile.ZipFile(bad) as z:
            assert {name: z.read(name) for name in z.namelist()} == original, f"byte {at} changed a file"
    assert passed < len(data) // 4, "most flips are caught"


def test_archive_verify_reports_the_export_status(archive, capsys):
    assert verify_bundle(archive)["status"] == "pass"
    code, out = verify_cli(archive, capsys)
    assert code == 0 and "export status: pass" in out.out


FILES_OK = {"sha256": "0" * 64, "bytes": 1}


@pytest.mark.reliability(40)
@pytest.mark.parametrize("change,message", [
    (lambda m: m.update(files={"model.tflite": "abc"}), "bad file list"),
    (lambda m: m.update(files=[]), "has no file list"),
    (lambda m: m["files"]["model.tflite"].update(bytes="12"), "no valid byte count"),
    (lambda m: m["files"]["model.tflite"].update(bytes=True), "no valid byte count"),
    (lambda m: m["files"]["model.tflite"].update(sha256=123), "no valid sha256"),
    (lambda m: m["files"].update({"../outside": FILES_OK}), "escapes the bundle"),
    (lambda m: m["files"].update({"/etc/passwd": FILES_OK}), "absolute"),
    (lambda m: m["files"].update({"hil/run.json": FILES_OK}), "cannot be listed"),
    (lambda m: m.update(format="someone-else"), "someone else's"),
    (lambda m: m.update(format_version=99), "newer than this edgex"),
    (lambda m: m.clear() or m.update(x=[1]), "has no file list"),
])
@pytest.mark.parametrize("kind", ["folder", "zip"])
def test_manifest_of_the_wrong_shape_exits_3(tmp_path, capsys, change, message, kind):
    out = write_bundle(tmp_path / "b", {"model.tflite": b"m"}, {"status": "pass"}, make_zip=True)
    manifest = json.loads((out / "manifest.json").read_text())
    change(manifest)
    raw = json.dumps(manifest).encode()
    if kind == "folder":
        (out / "manifest.json").write_bytes(raw)
        target = out
    else:
        target = tmp_path / "edited.zip"
        with zipfile.ZipFile(tmp_path / "b.zip") as src, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as dst:
            for name in src.namelist():
                dst.writestr(name, raw if name == "manifest.json" else src.read(name))
    code, result = verify_cli(target, capsys)
    assert code == 3 and message in result.err and "internal error" not in result.err


@pytest.mark.reliability(40)
@pytest.mark.parametrize("raw", [b"[]", b"null", b"\xff\xfe", b"[" * 100_000])
def test_manifest_that_is_not_an_object_exits_3(tmp_path, capsys, raw):
    out = write_bundle(tmp_path / "b", {"model.tflite": b"m"}, {})
    (out / "manifest.json").write_bytes(raw)
    code, result = verify_cli(out, capsys)
    assert code == 3 and "manifest.json" in result.err
