"""Ethos-U target end to end: the demo compiled by Vela, its bundle and figures."""
import pytest

import exporter
from exporter.errors import ConfigError
from exporter.profile import PROFILE_DIR


@pytest.fixture(scope="module")
def bundle(demo, tmp_path_factory):
    """The demo exported for the default Ethos-U profile (corstone-300-u55-128)."""
    out = tmp_path_factory.mktemp("ethos-u") / "u55"
    return exporter.export(demo=True, target="ethos-u", out=out, progress=False), out


def test_demo_exports_and_verifies(bundle):
    report, out = bundle
    assert report.passed and report.mode == "int8" and report.io_dtype == "int8"
    assert {c.name for c in report.checks} >= {"flash", "ram", "latency", "accuracy_drop"}
    assert exporter.verify(out)["status"] == "pass"
    assert report.measurements["latency"].source == "estimated"


def test_ethos_u_bundle_has_vela_outputs(bundle):
    report, out = bundle
    m = report.measurements
    assert m["npu_ops"].value == 7 and m["cpu_ops"].value == 0
    assert (out / "ethos_u" / "model_vela.tflite").is_file()
    assert "sram_memory_used" in (out / "ethos_u" / "vela_summary.csv").read_text()
    assert m["latency"].value > 0 and "cycles" in m["latency"].note
    assert "(cost model; TFLM runs on one core)" in m["latency"].note and "thread" not in m["latency"].note
    assert (out / "mcu" / "model_data.cc").is_file() and (out / "mcu" / "op_resolver.h").is_file()


def test_ethos_u_profile_needs_both_sections(tmp_path):
    text = (PROFILE_DIR / "corstone-300-u55-128.yaml").read_text()
    (tmp_path / "no-npu.yaml").write_text(text.split("ethos_u:\n")[0])
    with pytest.raises(ConfigError, match="no 'ethos_u' section"):
        exporter.export(demo=True, target="ethos-u", profile=tmp_path / "no-npu.yaml", progress=False)
