"""Several targets in one run against one run per target (issue 11: "converts once").

A Keras MobileNetV2 (alpha 0.35, 96x96, 10 classes, `weights=None`, so nothing is downloaded) is
saved as a tf_keras `.keras`, with 64 random calibration samples. It is exported for android,
microcontroller and edgetpu in one `edgex export --target ... --target ...` process, and in three
single-target processes. The table gives the wall times, the conversions each made (counted from
the status lines) and the ratio. Untrained weights: the checks' verdicts are not the point here.

Usage: .venv/bin/python benchmarks/multi_target.py [--targets android microcontroller edgetpu]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MAKE_MODEL = r'''
import os, sys
os.environ["TF_USE_LEGACY_KERAS"] = "1"
import numpy as np, tf_keras
model = tf_keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, weights=None, classes=10)
model.save(sys.argv[1])
np.savez(sys.argv[2], x=np.random.default_rng(0).random((64, 96, 96, 3), dtype=np.float32))
'''


def run(cmd: list[str], env: dict) -> tuple[float, int, int]:
    """(wall seconds, exit code, conversions announced on stderr)."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        sys.exit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return elapsed, proc.returncode, proc.stderr.count("converting to TFLite")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", nargs="+", default=["android", "microcontroller", "edgetpu"])
    args = parser.parse_args()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("EDGEX_NO_PROGRESS", None)
    edgex = str(Path(sys.executable).with_name("edgex"))
    with tempfile.TemporaryDirectory() as tmp:
        model, calib = f"{tmp}/mobilenet_v2.keras", f"{tmp}/calib.npz"
        subprocess.run([sys.executable, "-c", MAKE_MODEL, model, calib], env=env, check=True, capture_output=True)
        base = [edgex, "export", model, "--calib", calib]
        flags = [f for t in args.targets for f in ("--target", t)]
        multi = run(base + flags + ["--out", f"{tmp}/multi"], env)
        singles = [run(base + ["--target", t, "--out", f"{tmp}/single-{t}"], env) for t in args.targets]
    single_time = sum(s[0] for s in singles)
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"MobileNetV2 0.35 96x96 for {', '.join(args.targets)}, measured on this machine")
    for col in ("run", "wall time", "conversions", "exit codes"):
        table.add_column(col)
    table.add_row("one run, several --target", f"{multi[0]:.1f} s", str(multi[2]), str(multi[1]))
    table.add_row("one run per target", f"{single_time:.1f} s", str(sum(s[2] for s in singles)),
                  ", ".join(str(s[1]) for s in singles))
    table.add_row("ratio (several / singles)", f"{multi[0] / single_time:.2f}x", "", "")
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
