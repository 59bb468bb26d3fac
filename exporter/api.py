"""The Python API: what the CLI and users call. The CLI does nothing this module cannot.

`export` collects its arguments and runs the named steps of exporter/steps.py.

Example:
    >>> import exporter
    >>> report = exporter.export(demo.model_path, target="android", calib=demo.calib, eval=demo.eval,
    ...                          labels=demo.labels, out="build/android", progress=False)
    >>> report.passed, [c.name for c in report.failed_checks()]
    (True, [])
    >>> exporter.verify("build/android")["files"]
    9
    >>> exporter.inspect("build/android/model.tflite").subgraph_count
    1
"""
from __future__ import annotations

from pathlib import Path

from exporter import progress as progress_mod
from exporter import steps
from exporter.steps import library_versions
from exporter.tflite_metadata.info import ModelInfo

__all__ = ["export", "inspect", "library_versions", "run_steps", "verify"]


def export(model=None, *, target: str | None = None, profile=None, calib=None, eval=None, labels=None,
           out=None, quantize: str | None = None, limits=None, trust_model: bool = False,
           make_zip: bool = False, demo: bool = False, progress: bool = True, recipe=None, train=None,
           target_options: dict | None = None, force: bool = False, targets: list[str] | None = None,
           normalize: str | None = None, input_shapes=None, label_output: str | None = None,
           bundle_samples: int | None = None, model_name: str | None = None, model_version: str | None = None,
           model_description: str | None = None, author: str | None = None, license: str | None = None,  # noqa: A002
           sparse_encoding: str | None = None, provenance: dict | None = None):
    """Convert, measure and check a model against a device profile, and write its bundle.

    The work is done by the named steps of exporter/steps.py: resolve → load → check data → prove
    bridge (Keras 3 models) → build → encode (sparse weights: exporter/sparse/step.py) → describe (TFLite
    metadata: exporter/tflite_metadata/step.py) → assess → package.

    Args:
        model: a .keras/.h5/SavedModel/.tflite path, a tf_keras or Keras 3 model (exporter/keras3/); None with `demo=True`.
        target: registered target name (`edgex targets`). Default "android".
        targets: several targets instead of `target` (exporter/multi_target.py): one conversion per distinct
            (recipe, mode, I/O dtype), bundles in `<out>/<target>` on default profiles; returns a list of Reports.
        profile: profile name or YAML path. Default: the target's default profile.
        calib, eval, train: calibration (needed for int8), evaluation (labels give top-1 accuracy) and
            labelled training data (for stages that fine-tune): an .npz/.npy path, arrays, (x, y), or a
            folder of PNG/JPEG/BMP images, flat or one sub-folder per class (exporter/image_folder.py).
            Several inputs take one array each (exporter/input_arrays.py).
        labels: class names, a labels.txt path or a list; copied into the bundle.
        out: bundle directory (with `targets`: their folder); None writes none. Only an edgex bundle is replaced.
        quantize: float32 | float16 | dynamic | int8. Default: the profile's preferred mode.
        limits: overrides, {"model_size": "1KB"} or ["latency=12ms"].
        trust_model: allow models whose loading can run code (Lambda layers, SavedModel).
        make_zip: also write `<out>.zip` (the full name plus ".zip": `android-1.2.zip`).
        demo: use the built-in digits CNN and its data (its training split feeds fine-tuning).
        progress: progress bars on stderr during this call (restored afterwards). Default True.
        recipe: the stages before conversion: a `Recipe`, a dict, a YAML path or a bundle (its manifest's recipe).
        target_options: the target's typed options, e.g. `{"require_compiled": True}` for the Edge TPU.
        force: carry files a user added inside the bundle at `out` into the new one instead of refusing.
        normalize: image folders' pixels as "unit" (0..1, default), "signed" (-1..1), "imagenet" or "raw" (0..255).
        input_shapes: the shape for dynamic input dims: `(1, 50, 4)` or `{"NAME": (1, 50, 4)}` (exporter/input_shapes.py).
        label_output: with several outputs, the one the labels are for (accuracy, agreement). Default: the first.
        bundle_samples: labelled eval samples the bundle keeps for device runs (`agent/eval_samples.npz`; 0: none).
            Default None: as many as fit in 1 MB (exporter/bundle_samples.py).
        model_name, model_version, model_description, author, license: what the model's TFLite metadata says
            (android and linux; exporter/tflite_metadata/). Defaults: the model file's name ("edgex demo"), "1",
            what edgex made for which target; no author or licence.
        sparse_encoding: "auto", "on" or "off": store pruned weights in TFLite's sparse encoding (android and linux,
            float models; exporter/sparse/). Default None: the recipe's, else "auto" (on when some kernel is 30 % zeros).
        provenance: where it came from, for the manifest: {"optimize": {study, storage, trial, params}} (exporter/manifest.py).

    Returns:
        The Report; `report.passed` is False when a limit is broken (the bundle is still written).
        With `targets`: the list of Reports, in the order of `targets`.

    Raises:
        ExporterError: a subclass carrying the exit code (see exporter.errors).
    """
    args = _export_args(locals())
    with progress_mod.scoped(enabled=progress), progress_mod.quiet_native_stderr():   # TF's native log lines
        if targets is None:
            return run_steps(args)
        from exporter.multi_target import export_targets
        return export_targets(args, list(targets))


def _export_args(given: dict) -> steps.ExportArgs:
    """`export`'s parameters (`given`: its locals) grouped into the ExportArgs its steps take.

    Each of `Sources`, `Output` and `ModelInfo` (exporter/tflite_metadata/info.py, whose fields are spelled
    `model_name=`, ...) takes the parameters of its fields' names; ExportArgs the rest.

    Raises:
        UsageError: both `target` and `targets` given, or a `provenance` that is not a dict of known kinds.
    """
    import dataclasses

    from exporter.manifest import provenance_record
    from exporter.tflite_metadata.info import OPTIONS

    if given["targets"] is not None and given["target"] is not None:
        from exporter.errors import UsageError

        raise UsageError("give either target or targets, not both")
    provenance_record(given["provenance"])                   # refused before any work

    def take(cls, spelled: dict | None = None) -> dict:
        return {f.name: given[(spelled or {}).get(f.name, f.name)] for f in dataclasses.fields(cls)}

    return steps.ExportArgs(
        sources=steps.Sources(**take(steps.Sources)), output=steps.Output(**take(steps.Output)),
        target=given["target"] or "android", profile=given["profile"], quantize=given["quantize"],
        limits=given["limits"], recipe=given["recipe"], target_options=given["target_options"],
        model_info=ModelInfo(**take(ModelInfo, OPTIONS)), sparse_encoding=given["sparse_encoding"])


def run_steps(args: steps.ExportArgs):
    """Run the steps of one export on `args`; what `export` does once its arguments are collected.

    Args:
        args: the export's arguments.

    Returns:
        The Report (the bundle is written when `args.output.out` is set).

    Raises:
        ExporterError: a subclass carrying the exit code (see exporter.errors).
    """
    from exporter.sparse.step import encode
    from exporter.tensor_names import step as strip_names
    from exporter.tflite_metadata.step import describe

    request = steps.resolve(args)
    inputs = steps.prove_bridge(steps.check_data(request, steps.load(request)))
    built = encode(request, inputs, steps.build(request, inputs))                    # sparse encoding
    built = describe(request, inputs, strip_names(request, built))                    # names; metadata
    assessment = steps.assess(request, inputs, built)
    report = steps.make_report(request, inputs, built, assessment)
    if request.output.out is not None:
        steps.package(request, inputs, built, assessment, report)
    return report


def inspect(model_path, input_shapes=None):
    """Parse a .tflite file and return its Graph (ops, MACs, tensors, peak activation memory).

    Args:
        model_path: the .tflite file.
        input_shapes: for a model with dynamic input dims, the shape to analyse it at (`(1, 50, 4)`
            or `{"NAME": (1, 50, 4)}`, as for `export`). Without it their sizes stay unknown (-1):
            the MACs of the ops they reach, `total_macs` and `peak_activation_bytes` are None.

    Raises:
        ModelFileError: missing file or not a valid TFLite model.
        UsageError: a shape that does not fit an input's signature, or that LiteRT cannot run.
    """
    from exporter.analysis.graph import Graph
    from exporter.errors import ModelFileError
    from exporter.input_shapes import fit, graph_at

    path = Path(model_path)
    if not path.is_file():
        raise ModelFileError(f"no such model file: {path}")
    data = path.read_bytes()
    graph = Graph.from_bytes(data)
    inputs = [(t.name, t.shape_signature) for t in graph.input_details()]
    return graph_at(data, fit(inputs, input_shapes, required=False, batch_one=False), graph)


def verify(bundle) -> dict:
    """Re-hash a bundle against its manifest. Raises IntegrityError naming each bad file."""
    from exporter.bundle import verify_bundle

    return verify_bundle(Path(bundle))
