"""`edgex hil run` end to end on the demo bundles: linux over SSH (real sshd, TF-free device venv),
microcontroller over serial (pty + TFLM firmware simulator), android on this machine (local)."""
import json
import sys

import pytest

import exporter
from tests.hil.test_serial import board, mcu_bundle  # noqa: F401  (fixtures of that module)
from tests.test_cli import run


@pytest.fixture(scope="module")
def linux_bundle(demo, tmp_path_factory):
    out = tmp_path_factory.mktemp("e2e") / "rpi"
    exporter.export(demo=True, target="linux", out=out, progress=False)
    return out


def test_linux_bundle_over_ssh_on_a_tf_free_device(sshd, device_venv, linux_bundle):
    result = run(["hil", "run", str(linux_bundle), "--device", f"ssh://{sshd.user}@{sshd.host}:{sshd.port}{sshd.home}",
                  "--identity", str(sshd.client_key), "--known-hosts", str(sshd.known_hosts),
                  "--python", str(device_venv), "--runs", "20", "--eval-samples", "100", "--json"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["result"]["runtime"] == "tflite_runtime" and data["result"]["runtime_version"] == "2.14.0"
    assert {c["name"]: c["source"] for c in data["checks"] if c["status"] != "skip"} == {
        "model_size": "measured", "ram": "measured", "latency": "measured", "accuracy_drop": "measured"}
    assert data["estimates"]["latency"]["estimated"] > 0


@pytest.mark.reliability(26)
def test_unknown_host_key_exits_5_and_pushes_nothing(sshd, linux_bundle, tmp_path):
    (tmp_path / "known_hosts").write_text("")
    result = run(["hil", "run", str(linux_bundle), "--device", f"ssh://{sshd.user}@{sshd.host}:{sshd.port}{sshd.home}",
                  "--identity", str(sshd.client_key), "--known-hosts", str(tmp_path / "known_hosts")])
    assert result.exit_code == 5 and "--accept-unknown-host" in result.stderr
    assert not sorted(sshd.home.glob(".edgex-*"))


def test_microcontroller_bundle_over_serial(board, mcu_bundle):  # noqa: F811
    port, _ = board()
    result = run(["hil", "run", str(mcu_bundle), "--device", f"serial://{port}", "--runs", "10", "--json"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["result"]["runtime"].startswith("TFLM") and data["result"]["cycles"] > 0
    ram = data["measurements"]["ram"]
    assert ram["source"] == "mixed" and "arena" in ram["note"] and "(measured on the device)" in ram["note"]
    assert data["measurements"]["latency"]["value"] > 0


@pytest.mark.reliability(30)
def test_firmware_disconnect_exits_5(board, mcu_bundle):  # noqa: F811
    port, _ = board(fault="die")
    result = run(["hil", "run", str(mcu_bundle), "--device", f"serial://{port}", "--runs", "10"])
    assert result.exit_code == 5 and "disconnected" in result.stderr


def test_android_bundle_on_this_machine(demo_bundle):
    _, out = demo_bundle
    result = run(["hil", "run", str(out), "--device", "local", "--python", sys.executable, "--runs", "10", "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["device"]["transport"] == "local"
