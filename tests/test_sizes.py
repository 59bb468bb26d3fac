"""One size vocabulary: stored, downloaded and in-RAM bytes, the same in every report."""
from __future__ import annotations

import gzip
import json

from exporter.cli_show import show_report
from exporter.sizes import SIZE_KINDS, size_line, size_record


def test_android_report_separates_stored_downloaded_and_ram(demo_bundle, capsys):
    report, out = demo_bundle
    model = (out / "model.tflite").read_bytes()
    record = report.to_dict()["sizes"]
    assert [k for k in record] == ["stored", "downloaded", "ram"]
    assert record["stored"][0] == {"figure": "model_size", "bytes": len(model), "source": "measured",
                                   "meaning": "bytes of model.tflite"}
    downloaded = record["downloaded"][0]
    assert downloaded["figure"] == "gzip_size"
    assert abs(downloaded["bytes"] - len(gzip.compress(model, 9))) < 64       # gzip -9; the header's time differs
    assert record["ram"][0]["figure"] == "ram" and record["ram"][0]["bytes"] > len(model)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["sizes"] == record
    assert manifest["weight_values"] is None                                   # no stages ran
    markdown = (out / "report.md").read_text()
    assert "## Sizes: stored, downloaded, in RAM" in markdown
    assert f"| stored | model_size | {len(model):,} B | measured |" in markdown
    assert "Sizes: stored, downloaded, in RAM" in (out / "report.html").read_text()
    show_report(report)
    line = next(li for li in capsys.readouterr().out.splitlines() if li.startswith("sizes: "))
    assert line == size_line(report.measurements)
    assert f"stored {len(model):,} B (model_size)" in line and "downloaded" in line and "in RAM" in line


def test_microcontroller_stores_flash_first_and_every_kind_is_explained(demo_bundle):
    report, _ = demo_bundle
    figures = dict(report.measurements)
    figures["model_flash"] = figures["model_size"].__class__("model_flash", 46000, "bytes", "measured", "gcc")
    record = size_record(figures)
    assert [f["figure"] for f in record["stored"]] == ["model_flash", "model_size"]
    assert size_line(figures).startswith("sizes: stored 46,000 B (model_flash)")
    names = [name for kind in SIZE_KINDS for name in kind.figures]
    assert len(names) == len(set(names))                  # a figure belongs to one kind
    assert {"model_size", "model_flash", "model_flash_uncompressed", "gzip_size", "ram", "arena"} <= set(names)
