"""The Python API: what the CLI and users call. The CLI does nothing this module cannot.

`export` collects its arguments and runs the named steps of exporter/steps.py.

Example:
    >>> import exporter
    >>> report = exporter.export(demo.model_path, target="android", calib=demo.calib, eval=demo.eval,
    ...                          labels=demo.labels, out="build/android", progress=False)
    >>> report.passed, [c.name for c in report.failed_checks()]
    (True, [])
    >>> exporter.verify("build/android")["files"]
    6
    >>> exporter.inspect("build/android/model.tflite").subgraph_count
    1
"""
from __future__ import annotations

from pathlib import Path

from exporter import progress as progress_mod
from exporter import steps
from exporter.steps import library_versions

__all__ = ["export", "inspect", "library_versions", "run_steps", "verify"]


def export(model=None, *, target: str | None = None, profile=None, calib=None, eval=None, labels=None,
           out=None, quantize: str | None = None, limits=None, trust_model: bool = False,
           make_zip: bool = False, demo: bool = False, progress: bool = True, recipe=None, train=None,
           target_options: dict | None = None, force: bool = False, targets: list[str] | None = None):
    """Convert, measure and check a model against a device profile, and write its bundle.

    The work is done by the named steps of exporter/steps.py: resolve → load → check data → build →
    assess → package.

    Args:
        model: path to .keras/.h5/SavedModel/.tflite, or a tf_keras model. None with `demo=True`.
        target: registered target name (`edgex targets`). Default "android".
        targets: several target names instead of `target` (see exporter/multi_target.py): one
            conversion per distinct (recipe, mode, I/O dtype), bundles in `<out>/<target>`, each
            target on its default profile. Returns a list of Reports. Default None (one target).
        profile: profile name or YAML path. Default: the target's default profile.
        calib: calibration data (.npz/.npy path, array, or (x, y)); needed for int8.
        eval: evaluation data; with labels it gives top-1 accuracy, without it output fidelity.
        labels: class names, a labels.txt path or a list; copied into the bundle.
        out: bundle directory (with `targets`: the folder of the bundles); None writes no bundle. An
            existing edgex bundle there is replaced; anything else is refused (exit 2) before any work.
        quantize: float32 | float16 | dynamic | int8. Default: the profile's preferred mode.
        limits: overrides, {"model_size": "1KB"} or ["latency=12ms"].
        trust_model: allow models whose loading can run code (Lambda layers, SavedModel).
        make_zip: also write `<out>.zip` (the full name plus ".zip": `android-1.2.zip`).
        demo: use the built-in digits CNN and its data (its training split feeds fine-tuning).
        progress: show progress bars on stderr during this call (the setting before it is restored
            afterwards). Default True.
        recipe: the stages to run before conversion: a `Recipe`, a dict, a YAML path or a bundle
            (its manifest's recipe). Default: the target's default recipe.
        train: labelled training data for stages that fine-tune (.npz path, (x, y) or Dataset).
        target_options: options the target takes (its `Options` model, checked before any work), e.g.
            `{"require_compiled": True}` for the Edge TPU: a bundle its compiler could not make is an
            error instead of an uncompiled bundle. Default: the target's defaults.
        force: keep files a user added inside the existing bundle at `out` (they are carried into
            the new bundle, never deleted) instead of refusing to replace it. Default False.

    Returns:
        The Report; `report.passed` is False when a limit is broken (the bundle is still written).
        With `targets`: the list of Reports, in the order of `targets`.

    Raises:
        ExporterError: a subclass carrying the exit code (see exporter.errors).
    """
    if targets is not None and target is not None:
        from exporter.errors import UsageError

        raise UsageError("give either target or targets, not both")
    args = steps.ExportArgs(
        sources=steps.Sources(model=model, calib=calib, eval=eval, labels=labels, train=train,
                              trust_model=trust_model, demo=demo),
        output=steps.Output(out=out, make_zip=make_zip, force=force),
        target=target or "android", profile=profile, quantize=quantize, limits=limits, recipe=recipe,
        target_options=target_options)
    with progress_mod.scoped(enabled=progress), progress_mod.quiet_native_stderr():   # TF's native log lines
        if targets is not None:
            from exporter.multi_target import export_targets

            return export_targets(args, list(targets))
        return run_steps(args)


def run_steps(args: steps.ExportArgs):
    """Run the steps of one export on `args`; what `export` does once its arguments are collected.

    Args:
        args: the export's arguments.

    Returns:
        The Report (the bundle is written when `args.output.out` is set).

    Raises:
        ExporterError: a subclass carrying the exit code (see exporter.errors).
    """
    request = steps.resolve(args)
    inputs = steps.check_data(request, steps.load(request))
    built = steps.build(request, inputs)
    assessment = steps.assess(request, inputs, built)
    report = steps.make_report(request, inputs, built, assessment)
    if request.output.out is not None:
        steps.package(request, inputs, built, assessment, report)
    return report


def inspect(model_path):
    """Parse a .tflite file and return its Graph (ops, MACs, tensors, peak activation memory).

    Raises:
        ModelFileError: missing file or not a valid TFLite model.
    """
    from exporter.analysis.graph import Graph
    from exporter.errors import ModelFileError

    path = Path(model_path)
    if not path.is_file():
        raise ModelFileError(f"no such model file: {path}")
    return Graph.from_bytes(path.read_bytes())


def verify(bundle) -> dict:
    """Re-hash a bundle against its manifest. Raises IntegrityError naming each bad file."""
    from exporter.bundle import verify_bundle

    return verify_bundle(Path(bundle))
