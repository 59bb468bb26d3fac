"""The Python API: what the CLI and users call. The CLI does nothing this module cannot.

Example:
    >>> import exporter
    >>> report = exporter.export("model.keras", target="android", calib="calib.npz",
    ...                          eval="eval.npz", out="build/android")
    >>> [c.name for c in report.failed_checks()]
    []
"""
from __future__ import annotations

import datetime as _dt
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from exporter import __version__
from exporter import progress as progress_mod
from exporter.errors import DataError, UsageError

_LIBRARIES = ("tensorflow", "tf-keras", "tensorflow-model-optimization", "ai-edge-litert", "numpy")


def library_versions() -> dict:
    """Versions of edgex, Python and the libraries that shape a bundle."""
    out = {"edgex": __version__, "python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def _dataset(value, role):
    from exporter.data import Dataset, dataset_from_arrays, load_dataset

    if value is None or isinstance(value, Dataset):
        return value
    if isinstance(value, (str, Path)):
        return load_dataset(value, role=role)
    if isinstance(value, tuple) and len(value) == 2:
        return dataset_from_arrays(*value, role=role)
    return dataset_from_arrays(value, role=role)


def _label_names(labels):
    from exporter.data import load_labels

    if labels is None or isinstance(labels, list):
        return labels
    return load_labels(labels)


def _io_signature(loaded):
    """(input shape, input dtype, number of classes) of a loaded model."""
    if loaded.model is None:
        from exporter.analysis.graph import Graph

        graph = Graph.from_bytes(loaded.tflite_bytes)
        inp, out = graph.input_details(), graph.output_details()
        if len(inp) != 1 or len(out) != 1:
            raise UsageError(f"the model has {len(inp)} inputs and {len(out)} outputs; edgex supports one of each")
        return inp[0].shape, "float32", out[0].shape[-1]
    model = loaded.model
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise UsageError(f"the model has {len(model.inputs)} inputs and {len(model.outputs)} outputs; "
                         "edgex supports one of each")
    shape = tuple(model.inputs[0].shape)
    return shape, model.inputs[0].dtype.name, model.outputs[0].shape[-1]


def _detect_mode(graph) -> str:
    if all(op.compute_dtype in ("int8", "uint8") for op in graph.ops if op.macs):
        return "int8"
    if any(op.compute_dtype == "hybrid" for op in graph.ops):
        return "dynamic"
    if any(t.dtype == "float16" and t.is_constant for t in graph.tensors):
        return "float16"
    return "float32"


def _recipe(recipe, target):
    from exporter.recipe import Recipe, _validate, load_recipe

    if recipe is None:
        return target.default_recipe()
    if isinstance(recipe, Recipe):
        return recipe
    if isinstance(recipe, dict):
        return _validate(recipe, "recipe")
    return load_recipe(recipe)


def export(model=None, *, target: str = "android", profile=None, calib=None, eval=None, labels=None,
           out=None, quantize: str | None = None, limits=None, trust_model: bool = False,
           make_zip: bool = False, demo: bool = False, progress: bool = True, recipe=None, train=None,
           target_options: dict | None = None, force: bool = False):
    """Convert, measure and check a model against a device profile, and write its bundle.

    Args:
        model: path to .keras/.h5/SavedModel/.tflite, or a tf_keras model. None with `demo=True`.
        target: registered target name (`edgex targets`). Default "android".
        profile: profile name or YAML path. Default: the target's default profile.
        calib: calibration data (.npz/.npy path, array, or (x, y)); needed for int8.
        eval: evaluation data; with labels it gives top-1 accuracy, without it output fidelity.
        labels: class names, a labels.txt path or a list; copied into the bundle.
        out: bundle directory; None writes no bundle. An existing edgex bundle there is replaced;
            anything else is refused (exit 2) before any work.
        quantize: float32 | float16 | dynamic | int8. Default: the profile's preferred mode.
        limits: overrides, {"model_size": "1KB"} or ["latency=12ms"].
        trust_model: allow models whose loading can run code (Lambda layers, SavedModel).
        make_zip: also write `<out>.zip` (the full name plus ".zip": `android-1.2.zip`).
        demo: use the built-in digits CNN and its data (its training split feeds fine-tuning).
        progress: show progress bars on stderr.
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

    Raises:
        ExporterError: a subclass carrying the exit code (see exporter.errors).
    """
    progress_mod.set_enabled(progress)
    with progress_mod.quiet_native_stderr():   # TensorFlow's native log lines; progress still shows
        return _export(model, target=target, profile=profile, calib=calib, eval=eval, labels=labels, out=out,
                       quantize=quantize, limits=limits, trust_model=trust_model, make_zip=make_zip, demo=demo,
                       recipe=recipe, train=train, target_options=target_options, force=force)


def _export(model, *, target, profile, calib, eval, labels, out, quantize, limits, trust_model, make_zip, demo,
            recipe, train, target_options=None, force=False):
    from exporter.analysis.graph import Graph
    from exporter.checks import run_checks
    from exporter.data import check_input, check_labels
    from exporter.model_io import load_model
    from exporter.profile import load_profile, parse_limit_overrides
    from exporter.report import Report
    from targets.base import Artifacts, get_target

    if out is not None:
        from exporter.output import check_output

        check_output(out, make_zip, force)          # every output problem (exit 2) before any work
    tgt = get_target(target)
    options = tgt.parse_options(target_options)
    prof = load_profile(profile or tgt.default_profile)
    policy = tgt.policy(prof)
    if limits:
        prof = prof.with_limits(parse_limit_overrides(limits))
    if demo:
        if model is not None:
            raise UsageError("give either a model or --demo, not both")
        from exporter.demo import load_demo

        d = load_demo()
        model, calib, eval, labels = d.model_path, calib or d.calib, eval or d.eval, labels or d.labels
        train = train or d.train
    if model is None:
        raise UsageError("no model given: pass MODEL (.keras, .h5, SavedModel dir or .tflite) or --demo")

    resolved = _recipe(recipe, tgt)
    stages = resolved.build()
    loaded = load_model(model, trust_model=trust_model)
    is_tflite = loaded.model is None
    if is_tflite and (quantize or resolved.quantize):
        raise UsageError("a .tflite model is bundled as it is; --quantize applies only to Keras models")
    if is_tflite and stages:
        raise UsageError("compression stages need a Keras model; a .tflite is bundled as it is")
    mode = None if is_tflite else policy.resolve(quantize or resolved.quantize)
    previous = []
    for stage in stages:
        stage.check_profile(prof, mode, previous)
        policy.check_stage(stage, prof.name)
        previous.append(stage.name)
    shape, dtype, classes = _io_signature(loaded)
    calib_ds, eval_ds, names = _dataset(calib, "calibration"), _dataset(eval, "evaluation"), _label_names(labels)
    train_ds = _dataset(train, "training")
    if any(s.needs_training for s in stages):
        if train_ds is None or train_ds.y is None:
            raise DataError(f"stage {next(s.name for s in stages if s.needs_training)!r} fine-tunes the model: "
                            "pass --train train.npz with arrays x and y")
    if train_ds is not None:
        train_ds = check_input(train_ds, shape=shape, dtype=dtype, role="training")
        check_labels(train_ds, int(classes))
    if calib_ds is not None:
        calib_ds = check_input(calib_ds, shape=shape, dtype=dtype, role="calibration")
    if eval_ds is not None:
        eval_ds = check_input(eval_ds, shape=shape, dtype=dtype, role="evaluation")
        if eval_ds.y is not None:
            check_labels(eval_ds, int(classes))
    if names is not None and classes and len(names) != classes:
        raise DataError(f"labels file has {len(names)} names but the model has {classes} classes")
    if mode == "int8" and (calib_ds is None or len(calib_ds) < policy.min_calibration_samples):
        got = 0 if calib_ds is None else len(calib_ds)
        raise DataError(f"int8 needs at least {policy.min_calibration_samples} calibration samples "
                        f"(--calib); got {got}. Pass --calib, or choose --quantize from {', '.join(policy.allowed)}")

    notes, records = [], []
    if is_tflite:
        tflite = loaded.tflite_bytes
        graph = Graph.from_bytes(tflite)
        mode = _detect_mode(graph)
        if mode not in policy.allowed:
            raise UsageError(f"the given .tflite is {mode}, which profile {prof.name} does not allow "
                             f"(allowed: {', '.join(policy.allowed)})")
        notes.append(f"input was a .tflite ({mode}); it is measured and bundled as it is")
    else:
        from exporter.stages.convert import ConvertConfig, convert

        progress_mod.status(f"converting to TFLite ({mode}) for {prof.name}")
        config = ConvertConfig(mode=mode, io_dtype=policy.io_dtype(mode),
                               min_calibration_samples=policy.min_calibration_samples)
        calib_x = None if calib_ds is None else calib_ds.x
        if stages:
            from exporter.pipeline import run_stages
            from exporter.stages.base import StageContext

            ctx = StageContext(train=train_ds, eval=eval_ds, training=resolved.training, profile=prof, mode=mode,
                               skip_layers=resolved.skip_layers, teacher=loaded.model)
            _, tflite, records = run_stages(loaded.model, stages, ctx, config, calib_x)
            notes += [f"{s['stage']}: skipped {k['layer']} ({k['class']}): {k.get('reason', '')}"
                      for s in records for k in s["skipped"]]
        else:
            tflite = convert(loaded.model, config, calib=calib_x)
        graph = Graph.from_bytes(tflite)
    notes += tgt.preflight(graph, prof, mode, tflite=tflite)

    progress_mod.status("measuring with LiteRT on this machine")
    artifacts = Artifacts(tflite=tflite, graph=graph, profile=prof, mode=mode, keras_model=loaded.model,
                          eval_ds=eval_ds, labels=names, source=str(loaded.path) if loaded.path else None,
                          options=options)
    measured = tgt.measure(artifacts)
    figures = measured.figures
    skipped = {"accuracy_drop": "no original model to compare with" if is_tflite and eval_ds is not None
               else "no evaluation data (--eval)"}
    checks = run_checks(prof.limits, figures, skipped) + tgt.extra_checks(artifacts, measured)
    report = Report(
        model=str(loaded.path or "<in-memory model>"), target=tgt.name, profile=prof.name, device=prof.device,
        mode=mode, io_dtype=policy.io_dtype(mode) if not is_tflite else graph.input_details()[0].dtype,
        measurements=figures, checks=checks, graph=graph.to_dict(), notes=notes, versions=library_versions(),
        stages=records, recipe={**resolved.to_dict(), "stages": [s.to_spec() for s in stages], "quantize": mode},
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    if out is not None:
        from exporter.hil.agent_files import bundle_agent_files

        extra = {**tgt.package(artifacts, measured), **bundle_agent_files(eval_ds, loaded.model)}
        _write(report, out, tflite, names, prof, extra, make_zip, force)
    return report


def _write(report, out, tflite, names, prof, target_files, make_zip, force=False):
    from exporter.bundle import write_bundle
    from exporter.report_html import render_html

    report.bundle = str(Path(out))
    files = {"model.tflite": tflite, "report.md": report.to_markdown().encode("utf-8"),
             "report.html": render_html(report).encode("utf-8"), **target_files}
    if names is not None:
        files["labels.txt"] = ("\n".join(names) + "\n").encode("utf-8")
    manifest = {
        "tool": "edgex", "status": report.status, "created": report.created, "versions": report.versions,
        "target": report.target, "profile": prof.model_dump(mode="json"),
        "recipe": {**report.recipe, "convert": {"mode": report.mode, "io_dtype": report.io_dtype}},
        "stages": report.stages,
        "source": report.model, "checks": [c.to_dict() for c in report.checks],
        "measurements": {k: m.to_dict() for k, m in report.measurements.items()}, "graph": report.graph,
        "notes": report.notes,
    }
    progress_mod.status(f"writing bundle {out}")
    write_bundle(Path(out), files, manifest, make_zip=make_zip, force=force)


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
