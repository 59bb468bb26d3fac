"""Which files a host-like device needs, and the command that runs the agent there.

Every bundle carries the agent it was made with as `agent/edgex_agent.py` (a copy of
exporter/hil/agent.py), and, when the export had evaluation data, `agent/eval_samples.npz`.
Devices only ever run the agent of the installed edgex (`AGENT_SOURCE`): code from a bundle is
never executed, whatever its manifest says. A bundle whose agent differs from the installed one
(made with another edgex, or edited) is refused by `check_bundle_agent` unless the user asks to
run this edgex's agent anyway (`--use-installed-agent`).

Example:
    >>> from exporter.hil.transports.base import RunPlan
    >>> files, argv = agent_invocation(bundle, RunPlan(runs=50), "python3")    # the demo's android bundle
    >>> files["edgex_agent.py"] == AGENT_SOURCE, sorted(files)
    (True, ['edgex_agent.py', 'manifest.json', 'model.tflite'])
    >>> " ".join(argv)
    'python3 edgex_agent.py --model model.tflite --manifest manifest.json --warmup 10 --runs 50'
"""
from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from exporter.errors import IntegrityError

AGENT_NAME = "edgex_agent.py"
EVAL_NAME = "eval_samples.npz"
AGENT_SOURCE = Path(__file__).with_name("agent.py")
AGENT_FLAG = "--use-installed-agent"
MAX_AGENT_BYTES = 4 << 20      # the agent is ~15 KB; a bigger file is not an edgex agent


def bundle_agent_files(eval_ds, keras_model=None, max_samples: int = 200, io=None) -> dict[str, bytes]:
    """Files to add to a bundle: the agent, and up to `max_samples` labelled eval samples.

    With the original Keras model, the samples also carry its top-1 answers (`ref`), so that a
    device run's accuracy is compared with the original's on exactly the same samples. The samples
    are named like data: `x`, or `x0`, `x1`, ... in the model's input order; `y` labels the label
    output, the one the manifest's `io` names (exporter/io_names.py).

    Args:
        eval_ds: the evaluation data set (x, y), or None.
        keras_model: the original model, for the reference answers (default None: none stored).
        max_samples: the most samples stored (default 200).
        io: the model's IOSignature (its label output); None: the first output.

    Returns:
        Bundle-relative path → bytes: `agent/edgex_agent.py` (this edgex's agent) and, with
        labelled data, `agent/eval_samples.npz`.
    """
    import io as io_module

    import numpy as np

    from exporter.io_names import data_names

    files = {f"agent/{AGENT_NAME}": AGENT_SOURCE.read_bytes()}
    if eval_ds is not None and eval_ds.y is not None:
        buffer = io_module.BytesIO()
        part = eval_ds.take(slice(0, max_samples))
        arrays = {**dict(zip(data_names(len(part.inputs)), part.inputs)), "y": part.y}
        if keras_model is not None:
            scores = keras_model.predict(part.keras_x, verbose=0, batch_size=256)
            scores = scores[io.label if io is not None else 0] if isinstance(scores, list) else scores
            arrays["ref"] = np.argmax(scores, axis=-1)
        np.savez(buffer, **arrays)
        files[f"agent/{EVAL_NAME}"] = buffer.getvalue()
    return files


def installed_agent_sha256() -> str:
    """The sha256 of the agent that ships with this edgex.

    Returns:
        The hex digest of `AGENT_SOURCE`, the only agent code edgex sends to a device.
    """
    return hashlib.sha256(AGENT_SOURCE.read_bytes()).hexdigest()


def _bundle_agent_sha256(path: Path) -> str | None:
    """The sha256 of a bundle's agent file; None when it is missing or not a regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_AGENT_BYTES:
            return None
        return hashlib.sha256(f.read(MAX_AGENT_BYTES + 1)).hexdigest()


def check_bundle_agent(bundle: Path, use_installed_agent: bool = False) -> str | None:
    """Refuse a bundle whose agent is not the one this edgex would run, unless told to go on.

    The device always runs the installed agent; this check makes sure that is what the bundle
    was made with, so that a bundle carrying other (older, newer or edited) agent code is noticed.

    Args:
        bundle: the bundle directory.
        use_installed_agent: run this edgex's agent even when the bundle's differs or is missing
            (`--use-installed-agent`); the difference is then returned as a note.

    Returns:
        None when the bundle's agent is the installed one; otherwise (only with
        `use_installed_agent`) a note for the run record.

    Raises:
        IntegrityError: the bundle's `agent/edgex_agent.py` is missing or differs from the installed
            agent, and `use_installed_agent` is False.
    """
    rel = f"agent/{AGENT_NAME}"
    theirs, ours = _bundle_agent_sha256(Path(bundle) / "agent" / AGENT_NAME), installed_agent_sha256()
    if theirs == ours:
        return None
    what = (f"has no {rel}" if theirs is None else
            f"carries an agent ({rel}, sha256 {theirs[:12]}…) that differs from this edgex's ({ours[:12]}…)")
    if use_installed_agent:
        return f"the bundle {what}; ran this edgex's agent instead ({AGENT_FLAG})"
    raise IntegrityError(f"bundle {bundle} {what}. edgex never runs agent code taken from a bundle: re-export "
                         f"it with this edgex, or pass {AGENT_FLAG} to run this edgex's agent on the device anyway")


def agent_invocation(bundle: Path, plan, python: str) -> tuple[dict[str, Path], list[str]]:
    """The files to push (remote name → local path) and the agent's argv (with remote names).

    The agent pushed is always the installed one (`AGENT_SOURCE`), never the bundle's copy; the
    model, manifest and eval samples come from the bundle.

    Args:
        bundle: the (verified) bundle directory.
        plan: a RunPlan (warm-up, runs, eval samples).
        python: the command that runs the agent on the device.

    Returns:
        ({remote name: local path}, argv).

    Raises:
        IntegrityError: the bundle lacks the model or the manifest.
    """
    bundle = Path(bundle)
    files = {"model.tflite": bundle / "model.tflite", "manifest.json": bundle / "manifest.json",
             AGENT_NAME: AGENT_SOURCE}
    for name in ("model.tflite", "manifest.json"):
        if not files[name].is_file():
            raise IntegrityError(f"bundle {bundle} has no {name}; re-export it with this edgex")
    argv = [python, AGENT_NAME, "--model", "model.tflite", "--manifest", "manifest.json",
            "--warmup", str(plan.warmup), "--runs", str(plan.runs)]
    if plan.eval_samples and (bundle / "agent" / EVAL_NAME).is_file():
        files[EVAL_NAME] = bundle / "agent" / EVAL_NAME
        argv += ["--eval", EVAL_NAME, "--eval-samples", str(plan.eval_samples)]
    return files, argv
