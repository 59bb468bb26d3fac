"""Device runs execute only the agent of the installed edgex, never code from a bundle (reliability case 38).

A bundle whose `agent/edgex_agent.py` was changed to create a canary file, with its manifest
re-hashed so that `edgex verify` passes, is refused (exit 3) on every transport that runs the
Python agent; with `--use-installed-agent` the installed agent runs instead. The canary never
appears.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from exporter.bundle import verify_bundle
from exporter.errors import IntegrityError
from exporter.hil.agent_files import AGENT_FLAG, AGENT_NAME, AGENT_SOURCE, agent_invocation, check_bundle_agent
from exporter.hil.runner import hil_run
from exporter.hil.transports.base import TRANSPORTS, HostTransport, RunPlan, TransportOptions
from tests.hil.test_adb import _options as adb_options
from tests.hil.test_ssh import options as ssh_options
from tests.hil.test_ssh import uri as ssh_uri
from tests.test_cli import run

PLAN = RunPlan(warmup=1, runs=3, timeout=120)


def rehash(bundle: Path, name: str) -> None:
    """Make the manifest agree with the file `name` again, as an attacker sharing a bundle would."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    data = (bundle / name).read_bytes()
    manifest["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))


@pytest.fixture
def evil_bundle(hil_bundle, tmp_path):
    """(bundle, canary): a verified bundle whose agent would create `canary` when run."""
    bundle, canary = tmp_path / "evil", tmp_path / "canary"
    shutil.copytree(hil_bundle, bundle)
    agent = bundle / "agent" / AGENT_NAME
    agent.write_text(f"open({str(canary)!r}, 'w').write('bundle code ran')\n" + AGENT_SOURCE.read_text())
    rehash(bundle, f"agent/{AGENT_NAME}")
    verify_bundle(bundle)                  # the tampering is invisible to verification
    return bundle, canary


@pytest.mark.reliability(38)
def test_the_installed_agent_is_pushed_never_the_bundles(evil_bundle):
    bundle, _ = evil_bundle
    files, argv = agent_invocation(bundle, PLAN, "python3")
    assert files[AGENT_NAME] == AGENT_SOURCE and argv[1] == AGENT_NAME
    assert all(bundle / "agent" / AGENT_NAME != path for path in files.values())


@pytest.mark.reliability(38)
def test_no_transport_replaces_the_agent_choice():
    """Every host transport runs the agent through HostTransport.run_bundle, so every one pushes what
    agent_invocation names; adb phones (which may run benchmark_model instead) call it for the agent."""
    import inspect

    from exporter.hil import phone_run

    assert {"local", "ssh", "adb", "serial"} <= set(TRANSPORTS.names())
    for scheme in ("local", "ssh", "adb"):
        cls = TRANSPORTS.get(scheme)
        assert issubclass(cls, HostTransport) and (cls.run_bundle is HostTransport.run_bundle or scheme == "adb")
    source = inspect.getsource(phone_run)
    assert source.count("HostTransport.run_bundle(") == 2 and "AGENT" not in source and "agent.py" not in source


@pytest.mark.reliability(38)
def test_local_run_refuses_a_bundle_with_another_agent(evil_bundle):
    bundle, canary = evil_bundle
    with pytest.raises(IntegrityError, match=AGENT_FLAG) as info:
        hil_run(bundle, "local", PLAN, TransportOptions(python=sys.executable))
    assert info.value.exit_code == 3 and "differs from this edgex" in str(info.value)
    assert not canary.exists() and not (bundle / "hil").exists()


@pytest.mark.reliability(38)
def test_cli_exit_3_then_the_flag_runs_the_installed_agent(evil_bundle):
    bundle, canary = evil_bundle
    args = ["hil", "run", str(bundle), "--device", "local", "--runs", "3", "--warmup", "1", "--python", sys.executable]
    refused = run(args)
    assert refused.exit_code == 3, refused.stderr
    assert "agent" in refused.stderr and AGENT_FLAG in refused.stderr and "Traceback" not in refused.stderr
    assert len(refused.stderr.strip().splitlines()) <= 2 and not canary.exists()
    allowed = run(args + [AGENT_FLAG, "--json"])
    assert allowed.exit_code == 0, allowed.stderr
    record = json.loads(allowed.stdout)
    assert record["result"]["ok"] and any(AGENT_FLAG in note for note in record["notes"])
    assert not canary.exists(), "the bundle's agent never ran"


def test_missing_agent_is_refused_unless_the_flag(hil_bundle, tmp_path):
    bundle = tmp_path / "b"
    shutil.copytree(hil_bundle, bundle)
    (bundle / "agent" / AGENT_NAME).unlink()
    with pytest.raises(IntegrityError, match=f"has no agent/{AGENT_NAME}"):
        check_bundle_agent(bundle)
    assert AGENT_FLAG in check_bundle_agent(bundle, use_installed_agent=True)
    assert check_bundle_agent(hil_bundle) is None, "an unchanged bundle needs no flag"


@pytest.mark.reliability(38)
def test_ssh_runs_only_the_installed_agent(sshd, device_venv, evil_bundle):
    bundle, canary = evil_bundle
    options = ssh_options(sshd, python=str(device_venv))
    with pytest.raises(IntegrityError, match=AGENT_FLAG):
        hil_run(bundle, ssh_uri(sshd), PLAN, options, store=False)
    assert not sorted(sshd.home.glob(".edgex-*")), "refused before connecting: nothing pushed"
    done = hil_run(bundle, ssh_uri(sshd), PLAN, options, store=False, use_installed_agent=True)
    assert done.result["ok"] and done.result["runtime"] == "tflite_runtime"
    assert not canary.exists()


@pytest.mark.reliability(38)
def test_adb_runs_only_the_installed_agent(adb_server, evil_bundle, tmp_path):  # noqa: F811
    bundle, canary = evil_bundle
    server = adb_server([("emulator-5554", "device")])
    device_dir = tmp_path / "device"
    device_dir.mkdir()
    options = replace(adb_options(server, device_dir, python=sys.executable), command_timeout=120)
    with pytest.raises(IntegrityError, match=AGENT_FLAG):
        hil_run(bundle, "adb://emulator-5554", PLAN, options, store=False)
    assert not server.requests, "refused before talking to the adb server"
    done = hil_run(bundle, "adb://emulator-5554", PLAN, options, store=False, use_installed_agent=True)
    assert done.result["ok"] and not canary.exists()
