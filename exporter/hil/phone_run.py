"""A device run on an Android phone over adb, with or without a Python on it.

A stock phone has no Python. What the phone is comes from `getprop` (model, ABIs, Android version);
then:

- with LiteRT's `benchmark_model` for its ABI (`--benchmark-binary`, or the edgex config,
  exporter/hil/user_config.py), the tool and the model are pushed (sha256-checked), the tool is
  made executable and run with the plan's warm-up and runs, the profile's threads and delegate and
  op profiling on (exporter/hil/benchmark_binary.py); its output becomes the run's answer
  (exporter/hil/benchmark_log.py). With `--eval-samples`, accuracy still needs the Python agent:
  it runs when the phone has a Python with numpy and a TFLite runtime, else the run says why
  accuracy was not measured on the device.
- without the tool, the Python agent runs as on any host-like device; a phone without a usable
  Python is then a UsageError (exit 2) saying where the tool comes from.

Python is looked for only when it is needed (`command -v`, then an import check), so a
benchmark-only run never starts one. Everything pushed lives in the transport's private dir,
which `close()` removes.

Example:
    >>> from exporter.hil.transports.base import RunPlan, open_transport
    >>> with open_transport("adb://R58M123ABC") as phone:                     # doctest: +SKIP
    ...     raw = run_on_phone(phone, Path("build/android"), RunPlan(runs=50, threads=4, delegate="xnnpack"))
    ...     phone.describe()["abi"]
    'arm64-v8a'
"""
from __future__ import annotations

import json
import shlex
from dataclasses import replace
from pathlib import Path

from exporter.errors import DeviceError, UsageError
from exporter.option_names import option

PROPS = {"model": "ro.product.model", "manufacturer": "ro.product.manufacturer", "abi": "ro.product.cpu.abi",
         "abilist": "ro.product.cpu.abilist", "android": "ro.build.version.release", "sdk": "ro.build.version.sdk"}
_PYTHON_NEEDS = ("import importlib.util as u, sys, numpy; sys.exit(0 if any(u.find_spec(m) for m in "
                 "('tflite_runtime', 'ai_edge_litert', 'tensorflow')) else 3)")


def phone_facts(transport) -> dict:
    """What `getprop` says the phone is: model, manufacturer, abi, abis (list), android, sdk (cached).

    Values are "" where the device has no such property (or no getprop: not an Android device).
    """
    if transport.phone is None:
        keys = " ".join(f"{name}={prop}" for name, prop in PROPS.items())
        cmd = f'for kv in {keys}; do echo "${{kv%%=*}}=$(getprop "${{kv#*=}}" 2>/dev/null)"; done'
        _, out = transport.shell(cmd, transport.options.connect_timeout)
        facts = dict.fromkeys(PROPS, "")
        for line in out.decode("utf-8", "replace").splitlines():
            name, _, value = line.partition("=")
            if name in facts:
                facts[name] = value.strip()[:100]
        abis = [a.strip() for a in facts.pop("abilist").split(",") if a.strip()]
        facts["abis"] = abis or ([facts["abi"]] if facts["abi"] else [])
        transport.phone = facts
    return transport.phone


def python_missing(transport) -> str | None:
    """Why the phone cannot run the Python agent (`options.python`), or None when it can."""
    argv = shlex.split(transport.options.python or "python3")
    code, _ = transport.shell(f"command -v {shlex.quote(argv[0])} >/dev/null 2>&1", transport.options.connect_timeout)
    if code != 0:
        return f"{argv[0]} not found"
    code, _, _ = transport.run([*argv, "-c", _PYTHON_NEEDS], transport.options.connect_timeout + 30)
    if code == 3:
        return f"{argv[0]} has numpy but no TFLite runtime (tflite-runtime, ai-edge-litert)"
    return None if code == 0 else f"{argv[0]} cannot import numpy (exit {code})"


def _no_tool(transport, facts: dict, why: str) -> UsageError:
    from exporter.hil.benchmark_binary import where_to_get

    abi = facts["abi"] or "its ABI"
    return UsageError(
        f"adb device {transport.serial} ({facts['model'] or 'unknown model'}, {abi}) has no Python to run the edgex "
        f"agent ({why}), and no benchmark_model is known for {abi}: give {option('benchmark_binary')} PATH, or "
        f"remember one with `edgex hil config --benchmark-binary {abi}=PATH`. Get {where_to_get(facts['abi'])}")


def _benchmark(transport, bundle: Path, plan, binary: Path, what: str) -> dict:
    """Push the model and the tool, make it executable, run it; its answer as a dict."""
    from exporter.hil.benchmark_binary import benchmark_argv
    from exporter.hil.benchmark_log import parse_benchmark_output
    from exporter.hil.transports.local import sha256_file

    transport.push(bundle / "model.tflite", "model.tflite")
    tool = transport.push(binary, "benchmark_model")
    code, _, err = transport.run(["chmod", "755", tool], transport.options.connect_timeout)
    if code != 0:
        raise DeviceError(f"adb device {transport.serial}: cannot make benchmark_model executable: "
                          f"{err.decode(errors='replace')[:200]}")
    code, out, err = transport.run(benchmark_argv("./benchmark_model", "model.tflite", plan), plan.timeout)
    text = out.decode("utf-8", "replace") + "\n" + err.decode("utf-8", "replace")
    if code in (126, 127):
        raise DeviceError(f"adb device {transport.serial} could not execute benchmark_model ({what}, exit {code}: "
                          f"{err.decode(errors='replace').strip()[-200:] or 'no message'}); it must be built for "
                          f"{transport.phone['abi'] or 'the phone'}")
    if code != 0:
        errors = [line for line in text.splitlines() if line.startswith(("ERROR:", "FATAL:"))][-3:]
        raise DeviceError(f"benchmark_model exited {code} on adb device {transport.serial}: "
                          f"{' | '.join(errors) or text.strip()[-300:] or 'no output'}")
    sha = sha256_file(binary)
    transport.tool = f"benchmark_model ({what}, sha256 {sha[:16]})"
    return parse_benchmark_output(text, threads=plan.threads or 1, delegate=plan.delegate or "xnnpack",
                                  model_sha256=sha256_file(bundle / "model.tflite"), runtime_version=f"sha256 {sha[:16]}")


def _accuracy(transport, bundle: Path, plan, answer: dict) -> None:
    """Score the eval samples with the Python agent when the phone has one; else say why not."""
    from exporter.hil.result import parse_agent_output
    from exporter.hil.transports.base import HostTransport

    why = python_missing(transport)
    if why is None:
        try:                                   # the benchmark's figures stand whatever happens here
            agent = parse_agent_output(HostTransport.run_bundle(transport, bundle, replace(plan, warmup=0, runs=1)))
            why = None if agent.ok and agent.accuracy is not None else f"the Python agent failed: {agent.error}"
        except DeviceError as exc:
            why = f"the Python agent failed: {exc}"
    if why is None:
        answer.update(accuracy=agent.accuracy, eval_samples=agent.eval_samples, output_digest=agent.output_digest)
        transport.notes.append(f"accuracy scored on the device by the Python agent ({agent.runtime} "
                               f"{agent.runtime_version}); latency and memory by benchmark_model")
        return
    reason = f"accuracy not measured on the device: {why}; benchmark_model measures latency and memory only"
    transport.skipped["accuracy_drop"] = reason
    transport.notes.append(reason)


def run_on_phone(transport, bundle: Path, plan) -> bytes:
    """Run a bundle on the phone behind an AdbTransport; return the answer (one JSON object).

    Raises:
        UsageError: no benchmark_model known and no usable Python, or a tool the phone cannot run (exit 2).
        DeviceError: a transfer, the tool or the agent failed on the device (exit 5).
    """
    from exporter.hil.benchmark_binary import check_binary
    from exporter.hil.transports.base import HostTransport
    from exporter.hil.user_config import benchmark_binary_for

    facts = phone_facts(transport)
    binary = transport.options.benchmark_binary or benchmark_binary_for(facts["abis"])
    if binary is None:
        why = python_missing(transport)
        if why is not None:
            raise _no_tool(transport, facts, why)
        return HostTransport.run_bundle(transport, bundle, plan)
    answer = _benchmark(transport, bundle, plan, Path(binary), check_binary(Path(binary), facts["abis"]))
    if plan.eval_samples:
        _accuracy(transport, bundle, plan, answer)
    return json.dumps(answer).encode()
