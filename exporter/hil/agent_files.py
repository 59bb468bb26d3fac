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
AGENT_DELEGATES = ("cpu", "xnnpack")   # what the agent's Python runtimes apply (gpu, nnapi: benchmark_model)


def bundle_agent_files(eval_ds, keras_model=None, io=None, count: int | None = None,
                       cap_bytes: int | None = None) -> tuple[dict[str, bytes], dict | None]:
    """Files to add to a bundle: the agent, and the labelled eval samples device runs score.

    Which samples, how many (by default as many as fit in 1 MB; `count` keeps that many instead) and
    their reference answers from the original model: exporter/bundle_samples.py. The samples are
    named like data: `x`, or `x0`, `x1`, ... in the model's input order; `y` labels the label
    output, the one the manifest's `io` names (exporter/io_names.py).

    Args:
        eval_ds: the evaluation data set (x, y), or None.
        keras_model: the original model, for the reference answers (default None: none stored).
        io: the model's IOSignature (its label output); None: the first output.
        count: keep this many samples (0: none); default None: as many as fit in `cap_bytes`.
        cap_bytes: the samples file's size limit without `count`; default None: 1 MB (1,000,000 B).

    Returns:
        (bundle-relative path → bytes: `agent/edgex_agent.py` (this edgex's agent) and, with kept
        labelled samples, `agent/eval_samples.npz`; the samples record for the report, None without eval data).
    """
    from exporter.bundle_samples import DEFAULT_CAP_BYTES, EVAL_PATH, choose_samples

    files = {f"agent/{AGENT_NAME}": AGENT_SOURCE.read_bytes()}
    choice = choose_samples(eval_ds, keras_model, io, count=count,
                            cap_bytes=DEFAULT_CAP_BYTES if cap_bytes is None else cap_bytes)
    if choice.data is not None:
        files[EVAL_PATH] = choice.data
    return files, choice.record


def eval_samples_note(manifest: dict, asked: int, ran: int | None) -> str | None:
    """Say so when a device run scored fewer eval samples than `--eval-samples` asked for.

    The agent scores at most the samples the bundle holds (exporter/bundle_samples.py caps them at
    export); the run's figures are then on `ran` samples, which this note makes plain.

    Args:
        manifest: the bundle's manifest (its `bundle_samples` record, when the export wrote one).
        asked: `--eval-samples`.
        ran: the eval samples the device scored (None: none).

    Returns:
        The note, or None when every sample asked for was scored.
    """
    ran = ran or 0
    if asked <= ran:
        return None
    record = manifest.get("bundle_samples") if isinstance(manifest.get("bundle_samples"), dict) else None
    why = ""
    if record is not None and isinstance(record.get("kept"), int) and isinstance(record.get("of"), int):
        cap = record.get("cap_bytes")
        by = {"cap": f"the {cap / 1e6:g} MB cap" if isinstance(cap, int) else "the size cap",
              "flag": "--bundle-samples"}.get(record.get("by"), str(record.get("by"))[:40])
        why = (f" (the export kept {record['kept']:,} of {record['of']:,} eval samples: {by}; re-export with "
               "--bundle-samples N to keep more)")
    if ran:
        held = f"the bundle holds {ran:,}"
    elif f"agent/{EVAL_NAME}" in (manifest.get("files") or {}):
        held, why = "this device scored none", ""
    else:
        held = f"the bundle has no agent/{EVAL_NAME}"
    return f"asked for {asked:,} eval samples (--eval-samples), ran {ran:,}: {held}{why}"


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
        plan: a RunPlan (warm-up, runs, eval samples, threads, delegate: the agent runs LiteRT's CPU paths
            only, `cpu` or `xnnpack`; for gpu or nnapi it runs xnnpack, and says so in its answer).
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
    if plan.threads:
        argv += ["--threads", str(plan.threads)]
    if plan.delegate:
        argv += ["--delegate", plan.delegate if plan.delegate in AGENT_DELEGATES else "xnnpack"]
    if plan.eval_samples and (bundle / "agent" / EVAL_NAME).is_file():
        files[EVAL_NAME] = bundle / "agent" / EVAL_NAME
        argv += ["--eval", EVAL_NAME, "--eval-samples", str(plan.eval_samples)]
    return files, argv
