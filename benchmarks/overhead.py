"""What edgex costs on top of the TensorFlow calls it makes, and how fast `edgex --help` starts.

Rows:
  1. `edgex export` (int8, android, the demo model) vs a hand-written script making the
     same TF calls (load, int8 conversion with the same calibration, LiteRT evaluation,
     Keras evaluation, write the .tflite), each a fresh process, median of --repeat runs.
  2. `edgex --help` start-up time (must not import TensorFlow), median of 10 runs.

Targets (issue 2): ratio <= 1.15, --help < 0.5 s. Nothing here is asserted; it prints.

Usage: .venv/bin/python benchmarks/overhead.py [--repeat 3]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HAND_WRITTEN = r'''
import os, sys
os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import numpy as np, tensorflow as tf, tf_keras
from ai_edge_litert.interpreter import Interpreter
model_path, calib_path, eval_path, out = sys.argv[1:5]
model = tf_keras.models.load_model(model_path, compile=False, safe_mode=True)
calib = np.load(calib_path)["x"][:200]
ev = np.load(eval_path)
x, y = ev["x"], ev["y"]
spec = model.inputs[0]
fn = tf.function(lambda t: model(t, training=False)).get_concrete_function(tf.TensorSpec([1, *spec.shape[1:]], spec.dtype))
conv = tf.lite.TFLiteConverter.from_concrete_functions([fn], model)
conv.optimizations = [tf.lite.Optimize.DEFAULT]
conv.representative_dataset = lambda: ([r[None]] for r in calib)
conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
conv.inference_input_type = tf.int8
conv.inference_output_type = tf.int8
data = conv.convert()
it = Interpreter(model_content=data, num_threads=1)
it.allocate_tensors()
i, o = it.get_input_details()[0], it.get_output_details()[0]
(s, z), (os_, oz) = i["quantization"], o["quantization"]
preds = []
for row in x:
    it.set_tensor(i["index"], np.clip(np.round(row[None] / s + z), -128, 127).astype(np.int8))
    it.invoke()
    preds.append((it.get_tensor(o["index"])[0].astype(np.float32) - oz) * os_)
acc = (np.argmax(preds, 1) == y).mean()
ref = (model.predict(x, verbose=0).argmax(1) == y).mean()
open(out, "wb").write(data)
print(acc, ref)
'''


def timed(cmd: list[str], env: dict) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from exporter.demo import DEMO_VERSION, cache_dir, load_demo
    from exporter.profile import load_profile

    demo = load_demo()
    folder = cache_dir() / DEMO_VERSION
    env = dict(os.environ, EDGEX_NO_PROGRESS="1", TF_CPP_MIN_LOG_LEVEL="2")
    edgex = str(Path(sys.executable).with_name("edgex"))
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "hand.py"
        script.write_text(HAND_WRITTEN)
        hand_cmd = [sys.executable, str(script), str(demo.model_path), str(folder / "calib.npz"),
                    str(folder / "eval.npz"), f"{tmp}/hand.tflite"]
        edgex_cmd = [edgex, "export", str(demo.model_path), "--target", "android", "--calib",
                     str(folder / "calib.npz"), "--eval", str(folder / "eval.npz"), "--labels",
                     str(folder / "labels.txt"), "--out", f"{tmp}/bundle"]
        hand, ours = [], []
        for _ in range(args.repeat):        # interleaved, so drift hits both alike
            hand.append(timed(hand_cmd, env))
            ours.append(timed(edgex_cmd, env))
        helps = [timed([edgex, "--help"], env) for _ in range(10)]
    h, e, s = statistics.median(hand), statistics.median(ours), statistics.median(helps)
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"edgex overhead (median of {args.repeat}; help: median of 10), measured on this machine")
    for col in ("row", "hand-written TF script", "edgex", "ratio / figure", "target", "LiteRT threads"):
        table.add_column(col)
    threads = f"1 / {load_profile('android-arm64-midrange').threads}"     # hand-written / edgex (its profile's)
    table.add_row("export int8 android (demo CNN)", f"{h:.2f} s", f"{e:.2f} s", f"{e / h:.3f}x", "<= 1.15x", threads)
    table.add_row("edgex --help start-up", "", f"{s * 1000:.0f} ms", f"{s * 1000:.0f} ms", "< 500 ms", "")
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
