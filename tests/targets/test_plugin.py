"""A target from another package: one folder, one YAML profile, one entry point, and edgex lists it,
validates its profile section and exports for it, with no edgex file changed."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

TARGET = '''
    """A made-up NPU board: the smallest complete third-party edgex target."""
    from pathlib import Path

    from pydantic import BaseModel, ConfigDict, Field

    from targets.base import Artifacts, Measured, Target


    class FakeNpuSettings(BaseModel):
        """The `fake_npu:` section of a profile: the NPU's throughput."""

        model_config = ConfigDict(extra="forbid", frozen=True)

        macs_per_cycle: int = Field(..., gt=0, description="MACs the NPU retires per cycle")
        clock_mhz: float = Field(..., gt=0, allow_inf_nan=False, description="NPU clock")


    class FakeNpuTarget(Target):
        """A fake NPU: host-measured size and accuracy, latency estimated from its profile section."""

        name = "fake-npu"
        summary = "A made-up NPU board (plugin test)"
        default_profile = str(Path(__file__).with_name("fake-npu-board.yaml"))
        runtime = "FakeNPU runtime"
        sections = {"fake_npu": FakeNpuSettings}

        def measure(self, artifacts: Artifacts) -> Measured:
            from exporter.checks import ESTIMATED, Measurement
            from exporter.measure import measure_host

            figures = measure_host(artifacts.tflite, artifacts.keras_model, artifacts.eval_ds, latency_runs=3)
            npu = artifacts.profile.section("fake_npu")
            ms = artifacts.graph.total_macs / (npu.macs_per_cycle * npu.clock_mhz * 1e3)
            figures["latency"] = Measurement("latency", ms, "ms", ESTIMATED,
                                             f"{npu.macs_per_cycle} MACs/cycle at {npu.clock_mhz:g} MHz")
            return Measured(figures)
'''

PROFILE = """\
# A made-up board for the plugin test; every figure invented.
target: fake-npu
device: "FakeNPU dev board"
limits:
  model_size: 1MB
  latency: 10ms
quantization:
  allowed: [float32, int8]
  preferred: int8
  int8_io: int8
  min_calibration_samples: 8
cost_model:
  float_gmacs: 1.0
  int8_gmacs: 4.0
  per_op_overhead_us: 5
  runtime_ram_bytes: 64KiB
fake_npu:
  macs_per_cycle: 256
  clock_mhz: 400
"""


@pytest.fixture(scope="module")
def plugin(tmp_path_factory) -> Path:
    """A directory holding the package `edgex_fake_npu`, its profile and its dist-info (as pip leaves them)."""
    root = tmp_path_factory.mktemp("site")
    package = root / "edgex_fake_npu"
    package.mkdir()
    (package / "__init__.py").write_text('"""A third-party edgex target."""\n')
    (package / "target.py").write_text(textwrap.dedent(TARGET))
    (package / "fake-npu-board.yaml").write_text(PROFILE)
    info = root / "edgex_fake_npu-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: edgex-fake-npu\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[edgex.targets]\nfake-npu = edgex_fake_npu.target:FakeNpuTarget\n")
    return root


def edgex(plugin: Path, *args: str) -> subprocess.CompletedProcess:
    """Run `edgex ARGS` in a fresh interpreter with the plugin's directory on PYTHONPATH."""
    env = {**os.environ, "PYTHONPATH": str(plugin), "EDGEX_NO_PROGRESS": "1"}
    code = "import sys; from exporter.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env,
                          cwd=plugin, timeout=300)


def test_the_plugin_target_is_listed(plugin):
    proc = edgex(plugin, "targets", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {row["target"]: row for row in json.loads(proc.stdout)}
    assert {"android", "fake-npu"} <= set(rows)
    assert rows["fake-npu"]["summary"] == "A made-up NPU board (plugin test)"
    assert rows["fake-npu"]["runtime"] == "FakeNPU runtime"


def test_its_profile_section_validates_and_a_misspelled_key_is_refused(plugin, tmp_path):
    yaml = plugin / "edgex_fake_npu" / "fake-npu-board.yaml"
    proc = edgex(plugin, "profiles", "show", str(yaml), "--json")
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)
    assert shown["target"] == "fake-npu" and shown["fake_npu"] == {"macs_per_cycle": 256, "clock_mhz": 400.0}

    typo = tmp_path / "typo.yaml"
    typo.write_text(PROFILE.replace("macs_per_cycle:", "macs_per_cylce:"))
    proc = edgex(plugin, "profiles", "show", str(typo))
    assert proc.returncode == 2, proc.stderr
    assert "fake_npu.macs_per_cylce" in proc.stderr and "macs_per_cycle" in proc.stderr


def test_an_export_for_the_plugin_target_writes_a_bundle(plugin, tiny_keras_file, tmp_path):
    out = tmp_path / "bundle"
    yaml = plugin / "edgex_fake_npu" / "fake-npu-board.yaml"
    proc = edgex(plugin, "export", str(tiny_keras_file), "--target", "fake-npu", "--profile", str(yaml),
                 "--quantize", "float32", "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["status"] == "pass"
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["latency"]["source"] == "estimated" and checks["model_size"]["source"] == "measured"
    manifest = json.loads((out / "manifest.json").read_text())
    assert (out / "model.tflite").is_file()
    assert manifest["profile"]["target"] == "fake-npu" and manifest["profile"]["fake_npu"]["macs_per_cycle"] == 256
