"""Which bundle files a host-like device needs, and the command that runs the agent there.

Every bundle carries the agent as `agent/edgex_agent.py` (a copy of exporter/hil/agent.py),
and, when the export had evaluation data, `agent/eval_samples.npz`.

Example:
    >>> files, argv = agent_invocation(Path("build/rpi"), RunPlan(runs=50), "python3")
    >>> argv[:2]
    ['python3', 'edgex_agent.py']
"""
from __future__ import annotations

from pathlib import Path

from exporter.errors import IntegrityError

AGENT_NAME = "edgex_agent.py"
EVAL_NAME = "eval_samples.npz"
AGENT_SOURCE = Path(__file__).with_name("agent.py")


def bundle_agent_files(eval_ds, keras_model=None, max_samples: int = 200) -> dict[str, bytes]:
    """Files to add to a bundle: the agent, and up to `max_samples` labelled eval samples.

    With the original Keras model, the samples also carry its top-1 answers (`ref`), so that a
    device run's accuracy is compared with the original's on exactly the same samples.
    """
    import io

    import numpy as np

    files = {f"agent/{AGENT_NAME}": AGENT_SOURCE.read_bytes()}
    if eval_ds is not None and eval_ds.y is not None:
        buffer = io.BytesIO()
        arrays = {"x": eval_ds.x[:max_samples], "y": eval_ds.y[:max_samples]}
        if keras_model is not None:
            arrays["ref"] = np.argmax(keras_model.predict(arrays["x"], verbose=0, batch_size=256), axis=-1)
        np.savez(buffer, **arrays)
        files[f"agent/{EVAL_NAME}"] = buffer.getvalue()
    return files


def agent_invocation(bundle: Path, plan, python: str) -> tuple[dict[str, Path], list[str]]:
    """The files to push (remote name → local path) and the agent's argv (with remote names).

    Raises:
        IntegrityError: the bundle lacks the model, the manifest or the agent.
    """
    bundle = Path(bundle)
    files = {"model.tflite": bundle / "model.tflite", "manifest.json": bundle / "manifest.json",
             AGENT_NAME: bundle / "agent" / AGENT_NAME}
    for name, path in files.items():
        if not path.is_file():
            raise IntegrityError(f"bundle {bundle} has no {path.relative_to(bundle)}; re-export it with this edgex")
    argv = [python, AGENT_NAME, "--model", "model.tflite", "--manifest", "manifest.json",
            "--warmup", str(plan.warmup), "--runs", str(plan.runs)]
    if plan.eval_samples and (bundle / "agent" / EVAL_NAME).is_file():
        files[EVAL_NAME] = bundle / "agent" / EVAL_NAME
        argv += ["--eval", EVAL_NAME, "--eval-samples", str(plan.eval_samples)]
    return files, argv
