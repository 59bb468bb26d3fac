"""The options of `edgex export`, in groups.

Each group is a decorator that adds its click options under one heading of `--help` and hands
the command one small frozen dataclass instead of loose arguments: `device_options` gives a
`DeviceOptions`, `data_options` a `DataOptions`, and so on. `SectionedCommand` is the command
class that prints those headings. Only click is imported here: `edgex --help` stays light.

Example:
    >>> @click.command(cls=SectionedCommand)
    ... @output_options
    ... def write(output):
    ...     click.echo(f"{output.out} zip={output.make_zip}")
    >>> write.main(["--out", "build/a", "--zip"], standalone_mode=False)
    build/a zip=True
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import click

from exporter.normalization import MODES
from exporter.quant_modes import QUANT_MODES

__all__ = ["DataOptions", "DeviceOptions", "MetadataOptions", "OutputOptions", "SectionedCommand", "StageOptions",
           "TrainingOptions", "data_options", "device_options", "metadata_options", "option_group", "output_options",
           "stage_options", "training_options"]

OTHER = "Other options"


class SectionedCommand(click.Command):
    """A click command whose `--help` lists options under their groups' headings, in order of use."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        sections: dict[str, list[tuple[str, str]]] = {}
        for param in self.get_params(ctx):
            record = None if isinstance(param, click.Argument) else param.get_help_record(ctx)
            if record is not None:
                sections.setdefault(getattr(param, "help_group", None) or OTHER, []).append(record)
        other = sections.pop(OTHER, None)                # --help and any ungrouped option: last
        for title, rows in [*sections.items(), *([(OTHER, other)] if other else [])]:
            with formatter.section(title):
                formatter.write_dl(rows)


def option_group(title: str, collect: type, into: str, *options):
    """A decorator adding `options` to a command under `title`, passed to it as one `collect`.

    Args:
        title: the heading the options are listed under in `--help` (with `SectionedCommand`).
        collect: a dataclass whose field names are the options' parameter names.
        into: the name of the command's parameter that receives the dataclass.
        options: `click.option(...)` decorators, in the order `--help` lists them.

    Returns:
        A decorator for a click command's callback.
    """
    names = [f.name for f in dataclasses.fields(collect)]

    def decorator(command):
        @functools.wraps(command)
        def collected(*args, **kwargs):
            kwargs[into] = collect(**{name: kwargs.pop(name) for name in names})
            return command(*args, **kwargs)

        params = collected.__click_params__ = list(getattr(command, "__click_params__", []))
        known = len(params)
        for option in reversed(options):
            collected = option(collected)
        for param in collected.__click_params__[known:]:
            param.help_group = title
        return collected

    return decorator


@dataclass(frozen=True)
class DeviceOptions:
    """Where the model goes: the target, its profile and limits, the conversion mode, target options."""

    targets: tuple[str, ...]
    profile: str | None
    quantize: str | None
    limits: tuple[str, ...]
    require_compiled: bool
    no_compress: bool
    sparse_encoding: str | None

    def target_options(self) -> dict | None:
        """The target options for `exporter.export` (None: the target's defaults)."""
        options = {**({"require_compiled": True} if self.require_compiled else {}),
                   **({"compress": False} if self.no_compress else {})}
        return options or None


device_options = option_group(
    "Target and profile", DeviceOptions, "device",
    click.option("--target", "-t", "targets", multiple=True, default=("android",), show_default=True,
                 help="Target kind (see `edgex targets`). Repeat for several targets: one bundle each in "
                      "OUT/<target>, converted once per distinct mode and I/O dtype."),
    click.option("--profile", "-p", help="Profile name or YAML path; default: the target's default profile."),
    click.option("--quantize", "-q", type=click.Choice(QUANT_MODES),
                 help="Conversion mode; default: the profile's preferred mode."),
    click.option("--sparse-encoding", type=click.Choice(["auto", "on", "off"]),
                 help="android, linux: store pruned weights in TFLite's sparse encoding (float32/float16 models); "
                      "auto (the default) when some kernel is at least 30 % zeros. Other targets refuse on."),
    click.option("--limit", "limits", multiple=True, metavar="NAME=VALUE",
                 help="Override a limit for this run, e.g. model_size=1KB, latency=12ms (repeatable)."),
    click.option("--require-compiled", is_flag=True,
                 help="Edge TPU: fail (exit 4) when edgetpu_compiler is missing instead of writing an uncompiled "
                      "bundle (an option of the edgetpu target; other targets refuse it)."),
    click.option("--no-compress", is_flag=True,
                 help="Microcontroller: store the weights as converted, without TFLM weight compression (an option "
                      "of the microcontroller target; other targets refuse it)."),
)


@dataclass(frozen=True)
class DataOptions:
    """What the model is given with: the demo or trust for the model, and the data files."""

    demo: bool
    trust_model: bool
    calib: str | None
    eval_: str | None
    labels: str | None
    train: str | None
    normalize: str | None
    input_shapes: tuple[str, ...]
    label_output: str | None


_FOLDERS = ("or a folder of PNG/JPEG/BMP images (flat, or one sub-folder per class: the labels), resized to the "
            "model's input")

data_options = option_group(
    "Model and data", DataOptions, "data",
    click.option("--demo", is_flag=True, help="Use the built-in digits CNN and its data."),
    click.option("--trust-model", is_flag=True, help="Allow models whose loading can run code (Lambda, SavedModel)."),
    click.option("--input-shape", "input_shapes", multiple=True, metavar="[NAME=]SHAPE",
                 help="The shape to measure a model with dynamic input dims at, e.g. 1,50,4 (its one input) or "
                      "NAME=1,50,4 (repeatable); only the -1 dims of its shape signature may differ."),
    click.option("--calib", help=f"Calibration data for int8: .npz with x, .npy, {_FOLDERS}."),
    click.option("--eval", "eval_", help=f"Evaluation data: .npz with x and optional y, {_FOLDERS}."),
    click.option("--labels", help="labels.txt with one class name per line, copied into the bundle (default with "
                                  "class folders: their names)."),
    click.option("--train", help=f"Labelled training data for stages that fine-tune: .npz with x, y, {_FOLDERS}."),
    click.option("--normalize", type=click.Choice(list(MODES)),
                 help="How image folders' pixels become inputs: unit 0..1 (default), signed -1..1, imagenet "
                      "(ImageNet mean/std), raw 0..255. Recorded in manifest.json (preprocessing)."),
    click.option("--label-output", metavar="NAME",
                 help="For a model with several outputs: the output the labels (y) are for and accuracy and "
                      "agreement are taken on; default: the first."),
)


@dataclass(frozen=True)
class OutputOptions:
    """Where the bundle goes and how the report is printed."""

    out: str
    make_zip: bool
    force: bool
    bundle_samples: int | None
    as_json: bool


output_options = option_group(
    "Output", OutputOptions, "output",
    click.option("--out", "-o", required=True,
                 help="Bundle directory to write (several --target: the folder of the bundles, OUT/<target>). An "
                      "existing edgex bundle there is replaced atomically (its hil/ device runs kept); any other "
                      "file or folder is refused (exit 2), never replaced."),
    click.option("--zip", "make_zip", is_flag=True,
                 help="Also write OUT.zip: OUT's full name plus .zip (--out android-1.2 gives android-1.2.zip)."),
    click.option("--force", is_flag=True,
                 help="Replace the bundle at --out even though you added files to it: they are kept (carried into "
                      "the new bundle, never deleted). Without it such a bundle is refused, naming the files."),
    click.option("--bundle-samples", type=click.IntRange(min=0), metavar="N",
                 help="Labelled eval samples the bundle keeps for device runs (agent/eval_samples.npz; 0: none). "
                      "Default: as many as fit in 1 MB (1,000,000 B), chosen class by class."),
    click.option("--json", "as_json", is_flag=True, help="Print the report as JSON."),
)


@dataclass(frozen=True)
class MetadataOptions:
    """What the model's TFLite metadata says about it (exporter/tflite_metadata/); None: the default."""

    model_name: str | None
    model_version: str | None
    model_description: str | None
    author: str | None
    license: str | None

    def to_api(self) -> dict:
        """The `exporter.export` keywords."""
        return dataclasses.asdict(self)


metadata_options = option_group(
    "Model metadata (android, linux)", MetadataOptions, "metadata",
    click.option("--model-name", metavar="TEXT", help="The model's name; default: the model file's name."),
    click.option("--model-version", metavar="TEXT", help="The model's version; default: 1."),
    click.option("--model-description", metavar="TEXT",
                 help="What the model does; default: what edgex made, for which target and profile."),
    click.option("--author", metavar="TEXT", help="Who made the model; default: none."),
    click.option("--license", metavar="TEXT", help="The licence(s) of the model, e.g. Apache-2.0; default: none."),
)


@dataclass(frozen=True)
class TrainingOptions:
    """How stages fine-tune; None leaves the recipe's (or the default) value."""

    epochs: int | None
    batch_size: int | None
    learning_rate: float | None
    patience: int | None
    seed: int | None

    def overrides(self) -> dict:
        """The given values as TrainingConfig overrides (options not given are left out)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


training_options = option_group(
    "Fine-tuning", TrainingOptions, "training",
    click.option("--epochs", type=int, help="Fine-tuning epochs per stage."),
    click.option("--batch-size", type=int, help="Fine-tuning batch size."),
    click.option("--learning-rate", type=float, help="Fine-tuning learning rate (Adam)."),
    click.option("--patience", type=int, help="Early-stopping patience on the validation split (0: off)."),
    click.option("--seed", type=int, help="Seed for training (same inputs give the same model)."),
)


@dataclass(frozen=True)
class StageOptions:
    """The compression stages: a recipe file, or the stage flags."""

    recipe: str | None
    prune: float | None
    prune_structured: str | None
    sparsify: str | None
    cluster: int | None
    qat: bool
    weight_bits: str | None
    distill: float | None
    student: str | None
    distill_mode: str | None
    skip_layers: tuple[str, ...]
    float_layers: tuple[str, ...]
    strip_names: bool

    def recipe_for(self, training: TrainingOptions):
        """The recipe to give `exporter.export`: one built from the flags, the --recipe path, or None.

        Raises:
            UsageError: both --recipe and stage flags, or conflicting flags.
            ConfigError: a flag value a stage's config refuses (e.g. --prune 1.5).
        """
        from exporter.errors import UsageError
        from exporter.recipe import recipe_from_flags

        flags = recipe_from_flags(prune=self.prune, prune_structured=self.prune_structured, sparsify=self.sparsify,
                                  cluster=self.cluster, qat=self.qat, weight_bits=self.weight_bits,
                                  distill=self.distill, student=self.student, distill_mode=self.distill_mode,
                                  training=training.overrides(), skip_layers=self.skip_layers,
                                  float_layers=self.float_layers, strip_names=self.strip_names)
        if flags is not None and self.recipe is not None:
            raise UsageError("give either --recipe or stage flags (--prune, --cluster, ...), not both")
        return flags if flags is not None else self.recipe


stage_options = option_group(
    "Compression stages", StageOptions, "stages",
    click.option("--recipe", help="Recipe YAML, or a bundle / manifest.json to re-run its recipe."),
    click.option("--prune", type=float, metavar="SPARSITY", help="Magnitude pruning to this sparsity, e.g. 0.8."),
    click.option("--prune-structured", metavar="M:N", help="Structured m:n sparsity, e.g. 2:4."),
    click.option("--sparsify", metavar="L1", help="Sparsity-based pruning: L1 regularisation, then thresholding."),
    click.option("--cluster", type=int, metavar="N", help="Weight clustering to N shared values per layer."),
    click.option("--qat", is_flag=True, help="Quantization-aware training (PQAT/CQAT/PCQAT after prune/cluster)."),
    click.option("--weight-bits", type=click.Choice(["4", "2", "1"]), help="Low-bit (4, 2) or binary (1) weights."),
    click.option("--distill", type=float, metavar="WIDTH", help="Distil into a student of this width multiplier."),
    click.option("--student", help="Distil into this student model (.keras)."),
    click.option("--distill-mode", type=click.Choice(["soft", "hard"]), help="Soft (KL on logits) or hard labels."),
    click.option("--skip-layer", "skip_layers", multiple=True, metavar="NAME", help="Leave this layer alone."),
    click.option("--float-layer", "float_layers", multiple=True, metavar="NAME",
                 help="int8 on android, linux: keep this layer's ops in float (repeatable)."),
    click.option("--strip-names", is_flag=True,
                 help="Remove the names of the .tflite's inner tensors (smaller; inputs and outputs keep theirs)."),
)
