"""What each compression recipe buys on the demo digits CNN, beside published figures.

Every row is a real export (`exporter.export(demo=True, ...)`) of the demo CNN: fine-tuned on the
demo's training split, converted, and measured on the demo's evaluation split with LiteRT on this
machine. "drop" is against the float Keras model; "ratio" is the float .tflite's gzip bytes over
the row's gzip bytes (TF-MOT's compressed-size convention).

Usage: .venv/bin/python benchmarks/compression.py [--epochs 3]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ANCHORS = [
    ("TF-MOT pruning tutorial (MNIST)", "pruning + PTQ int8: 10x smaller (gzip)", "pruning_with_keras.ipynb"),
    ("TF-MOT clustering tutorial (MNIST)", "clustering + PTQ: 8x smaller (gzip)", "clustering_example.ipynb"),
    ("TF-MOT QAT tutorial", "4x smaller, accuracy kept", "training_example.ipynb"),
    ("Deep Compression (Han et al. 2016)", "LeNet-5 39x, LeNet-300-100 40x, no accuracy loss", "arXiv 1510.00149"),
    ("Hinton et al. 2015 (MNIST)", "student 146 errors alone, 74 distilled", "arXiv 1503.02531"),
    ("BinaryNet", "MNIST error 0.96-1.40 % with 1-bit weights and activations", "arXiv 1602.02830"),
]


def rows(epochs: int):
    t = {"epochs": epochs}
    return [
        ("float baseline", "float32", []),
        ("PTQ int8", "int8", []),
        ("pruning 0.8 + int8", "int8", [{"type": "prune", "config": {"sparsity": 0.8}}]),
        ("clustering 16 + int8", "int8", [{"type": "cluster", "config": {"clusters": 16}}]),
        ("PQAT (prune 0.8 + QAT)", "int8", [{"type": "prune", "config": {"sparsity": 0.8}}, {"type": "qat"}]),
        ("PCQAT (prune 0.8, cluster 16, QAT)", "int8", [{"type": "prune", "config": {"sparsity": 0.8}},
                                                         {"type": "cluster", "config": {"clusters": 16}},
                                                         {"type": "qat"}]),
        ("PCQAT (prune 0.9, cluster 8, QAT)", "int8", [{"type": "prune", "config": {"sparsity": 0.9}},
                                                        {"type": "cluster", "config": {"clusters": 8}},
                                                        {"type": "qat"}]),
        ("distilled student (width 0.5) + int8", "int8",
         [{"type": "distill", "config": {"width": 0.5, "epochs": max(10, 3 * epochs)}}]),
        ("4-bit weights", "int8", [{"type": "lowbit", "config": {"bits": 4}}]),
        ("binary weights (1-bit)", "int8", [{"type": "lowbit", "config": {"bits": 1}}]),
    ], t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3, help="fine-tuning epochs per stage")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import exporter
    from rich.console import Console
    from rich.table import Table

    from exporter.profile import load_profile

    specs, training = rows(args.epochs)
    threads = load_profile("android-arm64-midrange").threads     # the android default: host LiteRT and the estimate
    results, distilled = [], []
    for name, mode, stages in specs:
        print(f"running: {name}", file=sys.stderr, flush=True)
        report = exporter.export(demo=True, target="android", quantize=mode, progress=False,
                                 recipe={"stages": stages, "training": training})
        m = report.measurements
        for stage in report.stages:
            if stage["stage"] == "distill":
                d = stage["metrics"]
                distilled.append(f"student (width {d['width']}, {d['epochs']} epochs, Keras): "
                                 f"{d['student_accuracy_distilled']:.2f} % distilled vs "
                                 f"{d['student_accuracy_labels_only']:.2f} % on labels alone; "
                                 f"teacher {d['teacher_accuracy']:.2f} %")
        results.append((name, m["accuracy"].value, m["accuracy_original"].value, m["model_size"].value,
                        m["gzip_size"].value, m["host_latency_p50"].value, m["latency"].value))
    float_gzip = results[0][4]
    float_acc = results[0][2]
    table = Table(title="compression on the demo digits CNN (measured on this machine; device latency estimated)")
    for col in ("recipe", "accuracy", "drop", ".tflite", "gzip", "ratio (gzip)", "host latency p50",
                "est. device latency", "threads"):
        table.add_column(col)
    for name, acc, _, size, gz, host, est in results:
        table.add_row(name, f"{acc:.2f} %", f"{float_acc - acc:+.2f} pt", f"{size:,} B", f"{gz:,} B",
                      f"{float_gzip / gz:.1f}x", f"{host * 1000:.0f} us", f"{est * 1000:.0f} us", str(threads))
    anchors = Table(title="published anchors (../shared/anchors.md)")
    for col in ("reference", "figure", "source"):
        anchors.add_column(col)
    for row in ANCHORS:
        anchors.add_row(*row)
    console = Console(width=140)
    console.print(table)
    console.print(anchors)
    for line in distilled:
        console.print(line)
    best = [r for r in results[1:] if float_acc - r[1] <= 1.0]
    if best:
        top = max(best, key=lambda r: float_gzip / r[4])
        console.print(f"smallest within 1 point of float: {top[0]}: {float_gzip / top[4]:.1f}x smaller (gzip), "
                      f"accuracy {top[1]:.2f} % vs float {float_acc:.2f} %")


if __name__ == "__main__":
    main()
