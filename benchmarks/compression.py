"""What each compression recipe buys on the demo digits CNN, in the three sizes, beside published figures.

Every row is a real export (`exporter.export(demo=True, ...)`) of the demo CNN: fine-tuned (--epochs per stage; one row 5x)
on the demo's training split, converted, and measured on the demo's evaluation split with LiteRT on this
machine. "drop" is against the float Keras model. Sizes follow the reports' vocabulary
(exporter/sizes.py), read from each report's `sizes`: stored (the headline: `model_size`, on a
microcontroller `model_flash`), downloaded (`gzip_size`) and in RAM (`ram`). "ratio (gzip)" is the
float .tflite's gzip bytes over the row's (TF-MOT's compressed-size convention). arduino-nano-33-ble
rows also show `model_flash` and `model_flash_uncompressed` when the report has them (TFLM weight
compression) and their ratio; rows whose export option this edgex lacks (`sparse_encoding`) are
left out with a note. Any figure a report adds about sparse encoding is printed under the table.

Usage: .venv/bin/python benchmarks/compression.py [--epochs 3] [--only TEXT]
"""
from __future__ import annotations

import argparse
import inspect
import sys
from pathlib import Path

ANCHORS = [
    ("TF-MOT pruning tutorial (MNIST)", "pruning + PTQ int8: 10x smaller (gzip)", "pruning_with_keras.ipynb"),
    ("TF-MOT clustering tutorial (MNIST)", "clustering + PTQ: 8x smaller (gzip)", "clustering_example.ipynb"),
    ("TF-MOT QAT tutorial", "4x smaller, accuracy kept", "training_example.ipynb"),
    ("Deep Compression (Han et al. 2016)", "LeNet-5 39x, LeNet-300-100 40x, no accuracy loss", "arXiv 1510.00149"),
    ("Hinton et al. 2015 (MNIST)", "student 146 errors alone, 74 distilled", "arXiv 1503.02531"),
    ("BinaryNet", "MNIST error 0.96-1.40 % with 1-bit weights and activations", "arXiv 1602.02830"),
    ("TFLM person detection", "250 KB int8 model, 136 KB arena", "tflite-micro person_detection"),
    ("Issue 14 goal (arduino-nano-33-ble)", "PCQAT >= 1.5x less flash, prune 0.9 + cluster 4 >= 2x", "issue 14"),
]
MCU = "arduino-nano-33-ble"
PRUNE = lambda s: {"type": "prune", "config": {"sparsity": s}}  # noqa: E731
CLUSTER = lambda n: {"type": "cluster", "config": {"clusters": n}}  # noqa: E731
QAT = {"type": "qat"}


def rows(epochs: int):
    """(name, target, profile, mode, stages, extra export options) per row; the training settings."""
    android = [
        ("float baseline", "float32", []),
        ("PTQ int8", "int8", []),
        ("pruning 0.8 + int8", "int8", [PRUNE(0.8)]),
        ("clustering 16 + int8", "int8", [CLUSTER(16)]),
        ("PQAT (prune 0.8 + QAT)", "int8", [PRUNE(0.8), QAT]),
        ("PCQAT (prune 0.8, cluster 16, QAT)", "int8", [PRUNE(0.8), CLUSTER(16), QAT]),
        ("PCQAT (prune 0.9, cluster 8, QAT)", "int8", [PRUNE(0.9), CLUSTER(8), QAT]),
        ("distilled student (width 0.5) + int8", "int8",
         [{"type": "distill", "config": {"width": 0.5, "epochs": max(10, 3 * epochs)}}]),
        ("4-bit weights", "int8", [{"type": "lowbit", "config": {"bits": 4}}]),
        ("binary weights (1-bit)", "int8", [{"type": "lowbit", "config": {"bits": 1}}]),
    ]
    out = [(name, "android", None, mode, stages, {}) for name, mode, stages in android]
    out += [
        ("pruning 0.8, float, sparse encoding off", "android", None, "float32", [PRUNE(0.8)],
         {"sparse_encoding": "off"}),
        ("pruning 0.8, float, sparse encoding on", "android", None, "float32", [PRUNE(0.8)],
         {"sparse_encoding": "on"}),
        ("PTQ int8", "microcontroller", MCU, "int8", [], {}),
        ("PCQAT (prune 0.8, cluster 16, QAT)", "microcontroller", MCU, "int8", [PRUNE(0.8), CLUSTER(16), QAT], {}),
        ("prune 0.9 + cluster 4 (3 epochs per stage)", "microcontroller", MCU, "int8", [PRUNE(0.9), CLUSTER(4)], {}),
        # 2-bit tables need longer fine-tuning to stay within the nano's 1-point limit (measured: 3 epochs 5.0 pt,
        # 8 epochs 1.7 pt, 15 epochs 0.8 pt); the row trains 5x the stages' epochs
        ("prune 0.9 + cluster 4 (5x epochs)", "microcontroller", MCU, "int8", [PRUNE(0.9), CLUSTER(4)],
         {"epochs_factor": 5}),
    ]
    return out, {"epochs": epochs}


def headline(report, kind: str):
    """The bytes of a report's headline figure of one size kind, and its name; (None, None) when absent."""
    entries = report.to_dict().get("sizes", {}).get(kind) or []
    return (entries[0]["bytes"], entries[0]["figure"]) if entries else (None, None)


def figure(report, name: str):
    m = report.measurements.get(name)
    return None if m is None else m.value


def run_rows(specs, training, only: str | None):
    """Export every row; (results, notes): one dict per row exported, and lines for the console."""
    import exporter

    accepted = set(inspect.signature(exporter.export).parameters)
    results, notes = [], []
    for name, target, profile, mode, stages, extra in specs:
        label = f"{name} [{profile or target}]"
        if only and only not in label:
            continue
        extra = dict(extra)
        row_training = {**training, "epochs": training["epochs"] * extra.pop("epochs_factor", 1)}
        missing = sorted(set(extra) - accepted)
        if missing:
            notes.append(f"{label}: left out, this edgex has no export option {', '.join(missing)}")
            continue
        print(f"running: {label}", file=sys.stderr, flush=True)
        report = exporter.export(demo=True, target=target, profile=profile, quantize=mode, progress=False,
                                 recipe={"stages": stages, "training": row_training}, **extra)
        results.append({"name": label, "report": report, "extra": extra})
        notes += distill_lines(report) + sparse_lines(label, report)
    return results, notes


def distill_lines(report) -> list[str]:
    """The distilled student's accuracy with and without the teacher, from the distill stage's record."""
    return [f"student (width {d['width']}, {d['epochs']} epochs, Keras): {d['student_accuracy_distilled']:.2f} % "
            f"distilled vs {d['student_accuracy_labels_only']:.2f} % on labels alone; teacher "
            f"{d['teacher_accuracy']:.2f} %" for d in (s["metrics"] for s in report.stages if s["stage"] == "distill")]


def sparse_lines(label: str, report) -> list[str]:
    """Whatever figures a report gives about sparse encoding, and the host latency ratio when it has both."""
    lines = [f"{label}: {m.name} = {m.pretty()} ({m.source}; {m.on})"
             for m in report.measurements.values() if "sparse" in m.name or "dense" in m.name]
    base = figure(report, "host_latency_p50")
    for m in report.measurements.values():
        if m.name.startswith("host_latency_p50") and m.name != "host_latency_p50" and base and m.value:
            lines.append(f"{label}: host latency {m.name} / host_latency_p50 = {m.value / base:.2f}x")
    return lines


def size(value) -> str:
    return "-" if value is None else f"{value:,} B"


def micros(measurement) -> str:
    """A latency figure (ms) in microseconds, or "-"."""
    return "-" if measurement is None or measurement.value is None else f"{measurement.value * 1000:.0f} us"


def table(results):
    from rich.table import Table

    first = results[0] if results and results[0]["name"].startswith("float baseline") else None
    float_gzip = headline(first["report"], "downloaded")[0] if first else None
    out = Table(title="compression on the demo digits CNN (measured on this machine; device latency estimated)")
    for col in ("recipe", "status", "accuracy", "drop", "stored", "downloaded (gzip)", "in RAM", "ratio (gzip)",
                "model_flash", "model_flash_uncompressed", "flash ratio", "host p50", "est. device"):
        out.add_column(col)
    for row in results:
        r = row["report"]
        m = r.measurements
        float_acc = m["accuracy_original"].value                 # the float Keras model, on the same eval split
        stored, stored_name = headline(r, "stored")
        gz, _ = headline(r, "downloaded")
        ram, _ = headline(r, "ram")
        flash, plain = figure(r, "model_flash"), figure(r, "model_flash_uncompressed")
        out.add_row(row["name"], r.status, f"{m['accuracy'].value:.2f} %",
                    f"{float_acc - m['accuracy'].value:+.2f} pt", f"{size(stored)} ({stored_name})", size(gz),
                    size(ram), f"{float_gzip / gz:.1f}x" if gz and float_gzip else "-", size(flash), size(plain),
                    f"{plain / flash:.2f}x" if flash and plain else "-", micros(m.get("host_latency_p50")),
                    micros(m.get("latency")))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3, help="fine-tuning epochs per stage (1: the quickest)")
    parser.add_argument("--only", help="run only the rows whose label ([target or profile] included) holds TEXT")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from rich.console import Console
    from rich.table import Table

    specs, training = rows(args.epochs)
    results, notes = run_rows(specs, training, args.only)
    anchors = Table(title="published anchors (../shared/anchors.md)")
    for col in ("reference", "figure", "source"):
        anchors.add_column(col)
    for row in ANCHORS:
        anchors.add_row(*row)
    console = Console(width=220, markup=False, highlight=False)      # row labels hold "[target]"
    console.print(table(results))
    console.print(anchors)
    for line in notes + best_line(results):
        console.print(line)


def best_line(results) -> list[str]:
    """The android int8 row with the smallest download within 1 point of the float model's accuracy."""
    def drop(r):
        return r["report"].measurements["accuracy_original"].value - r["report"].measurements["accuracy"].value

    near = [r for r in results if r["report"].target == "android" and r["report"].mode == "int8" and drop(r) <= 1.0]
    if not near:
        return []
    top = min(near, key=lambda r: headline(r["report"], "downloaded")[0])
    return [f"smallest download within 1 point of float: {top['name']}: {headline(top['report'], 'downloaded')[0]:,} B "
            f"gzip, accuracy drop {drop(top):+.2f} pt"]


if __name__ == "__main__":
    main()
