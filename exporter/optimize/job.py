"""What every trial of a search shares: the model, the target and profile, the data and the fine-tuning budget.

An `OptimizeJob` is built once on the driver (exporter/optimize/api.py) and shipped to every trial, in
this process or in a Ray worker (exporter/optimize/ray_runner.py): a plain, picklable dataclass of the
`exporter.export` arguments that do not change between trials. A trial adds its plan's recipe,
conversion mode and target options (exporter/optimize/trial.py).

Example:
    >>> job = OptimizeJob(target="android", demo=True, epochs=1)
    >>> kwargs = job.export_kwargs()
    >>> kwargs["demo"], kwargs["target"], "recipe" in kwargs
    (True, 'android', False)
    >>> job.has_train, job.has_labels
    (True, True)
"""
from __future__ import annotations

from dataclasses import dataclass, fields

# the OptimizeJob fields passed to exporter.export unchanged, by name
EXPORT_FIELDS = ("model", "demo", "target", "profile", "train", "calib", "eval", "labels", "limits", "normalize",
                 "input_shapes", "label_output", "trust_model")


@dataclass
class OptimizeJob:
    """Everything a trial needs besides its plan.

    Attributes:
        target: the registered target name (`edgex targets`).
        model: the model path (str), or None with `demo=True`.
        demo: search on the built-in digits CNN and its data (its training split fine-tunes).
        profile: profile name or YAML path; None: the target's default profile.
        train, calib, eval: what `exporter.export` accepts for them: paths, arrays, (x, y) or image folders.
        labels: class names or a labels.txt path.
        limits: limit overrides, `{"model_size": "1KB"}` or `["latency=12ms"]`.
        normalize, input_shapes, label_output, trust_model: as `exporter.export`.
        epochs: fine-tuning epochs per stage (default 2).
        seed: the seed of every trial's training (default 7).
        batch_size: fine-tuning batch size (default 32).
    """

    target: str
    model: str | None = None
    demo: bool = False
    profile: str | None = None
    train: object = None
    calib: object = None
    eval: object = None
    labels: object = None
    limits: object = None
    normalize: str | None = None
    input_shapes: object = None
    label_output: str | None = None
    trust_model: bool = False
    epochs: int = 2
    seed: int = 7
    batch_size: int = 32

    def export_kwargs(self) -> dict:
        """The `exporter.export(...)` keyword arguments common to every trial (no recipe, mode or out)."""
        return {name: getattr(self, name) for name in EXPORT_FIELDS}

    def resolved_profile(self):
        """The DeviceProfile a trial's export checks against: `profile` (or the target's default) with `limits`.

        Raises:
            UsageError: an unknown target or bad limit overrides.
            ConfigError: a profile that is not valid.
        """
        from exporter.profile import load_profile, parse_limit_overrides
        from targets.base import get_target

        profile = load_profile(self.profile or get_target(self.target).default_profile)
        return profile.with_limits(parse_limit_overrides(self.limits)) if self.limits else profile

    @property
    def has_train(self) -> bool:
        """Whether stages can fine-tune: training data given, or the demo (its training split)."""
        return self.demo or self.train is not None

    @property
    def has_labels(self) -> bool:
        """Whether accuracy can be measured (else agreement): the demo, or eval data with labels.

        Labels are known for the demo, for (x, y) pairs, for .npz files with `y` and for class folders;
        a path is taken as labelled when it is a folder or an .npz (the export says otherwise if not).
        """
        if self.demo:
            return True
        data = self.eval
        if data is None:
            return False
        if isinstance(data, (tuple, list)):
            return len(data) == 2 and data[1] is not None
        return not str(data).endswith(".npy")

    def to_dict(self) -> dict:
        """The job's plain fields (data given as arrays shows as their type), for records and fingerprints."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            plain = value is None or isinstance(value, (str, int, float, bool, dict, list))
            out[f.name] = value if plain else type(value).__name__
        return out
