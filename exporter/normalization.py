"""How image pixels become model inputs: the `--normalize` modes, one table.

Every mode maps an 8-bit pixel value p (0..255) of each channel to `(p - mean) / std`, with
`mean` and `std` in pixel units: the convention of TFLite metadata's NormalizationOptions, so an
app (or a metadata writer) can reproduce it from the bundle's manifest (`preprocessing.normalize`).
The table holds each mode's mean and std in 0..1 units, as the ImageNet constants are usually
written: `(p / 255 - mean) / std`. A grayscale model (one channel) takes the average of the three
RGB constants. Only the standard library is imported here (numpy inside `apply`), so `edgex --help`
can list the modes.

| mode | per channel | range |
|---|---|---|
| unit | p / 255 | 0..1 (the default) |
| signed | p / 127.5 - 1 | -1..1 |
| imagenet | (p / 255 - mean) / std, mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225) | about -2.1..2.6 |
| raw | p, as float | 0..255 |

Example:
    >>> n = normalization("imagenet", channels=3)
    >>> n.mean, n.std                                   # pixel units: 255 x the 0..1 constants
    ((123.675, 116.28, 103.53), (58.395, 57.12, 57.375))
    >>> [round(float(v), 3) for v in n.apply(np.array([0, 128, 255], np.uint8))]     # one pixel: R 0, G 128, B 255
    [-2.118, 0.205, 2.64]
    >>> normalization("unit", channels=1).to_dict()["range"], normalization("signed", channels=1).range
    ([0.0, 1.0], (-1.0, 1.0))
    >>> normalization("zscore", channels=1)
    Traceback (most recent call last):
    ...
    exporter.errors.UsageError: unknown normalize mode 'zscore'; choose one of unit, signed, imagenet, raw
"""
from __future__ import annotations

from dataclasses import dataclass

from exporter.errors import UsageError
from exporter.option_names import option

DEFAULT = "unit"
FORMULA = "(pixel - mean) / std per channel, pixel = the 8-bit value 0..255 (after resizing and color conversion)"


@dataclass(frozen=True)
class Mode:
    """One row of the table: RGB mean and std in 0..1 units, and how the mode reads in one phrase."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    reads: str


MODES: dict[str, Mode] = {
    "unit": Mode((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), "pixel/255, 0..1"),
    "signed": Mode((0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "pixel/127.5 - 1, -1..1"),
    "imagenet": Mode((0.485, 0.456, 0.406), (0.229, 0.224, 0.225),
                     "(pixel/255 - mean)/std with the ImageNet mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225)"),
    "raw": Mode((0.0, 0.0, 0.0), (1 / 255, 1 / 255, 1 / 255), "pixel values as float, 0..255"),
}
"""The normalization modes by name (`--normalize`, `normalize=`); the first is not special, DEFAULT is."""


@dataclass(frozen=True)
class Normalization:
    """A mode resolved for a channel count: mean and std per channel in pixel units.

    Attributes:
        mode: the mode's name.
        mean, std: per channel, in pixel units (0..255 scale).
    """

    mode: str
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def scale(self) -> tuple[float, ...]:
        """1 / std per channel: the same mapping written as `pixel * scale + offset`."""
        return tuple(1 / s for s in self.std)

    @property
    def offset(self) -> tuple[float, ...]:
        """-mean / std per channel."""
        return tuple(-m / s + 0.0 for m, s in zip(self.mean, self.std))     # + 0.0: no -0.0

    @property
    def range(self) -> tuple[float, float]:
        """The lowest and highest value a pixel can map to (over all channels)."""
        ends = [(0 - m) / s for m, s in zip(self.mean, self.std)] + [(255 - m) / s for m, s in zip(self.mean, self.std)]
        return (min(ends), max(ends))

    def apply(self, pixels):
        """float32 `(pixels - mean) / std` of uint8 pixels whose last axis is the channel."""
        import numpy as np

        mean, std = np.asarray(self.mean, np.float32), np.asarray(self.std, np.float32)
        return (pixels.astype(np.float32) - mean) / std

    def describe(self) -> str:
        """One phrase for the console and the report, e.g. "'unit' (pixel/255, 0..1)"."""
        return f"'{self.mode}' ({MODES[self.mode].reads})"

    def to_dict(self) -> dict:
        """The record for the manifest: mode, formula, mean/std (pixel units), scale/offset, range."""
        return {"mode": self.mode, "formula": FORMULA, "mean": list(self.mean), "std": list(self.std),
                "scale": list(self.scale), "offset": list(self.offset), "range": list(self.range)}


def normalization(mode: str | None, *, channels: int) -> Normalization:
    """The normalization `mode` (None: DEFAULT) for a model input with `channels` channels (1 or 3).

    Raises:
        UsageError: an unknown mode, naming the known ones.
    """
    name = DEFAULT if mode is None else mode
    if name not in MODES:
        raise UsageError(f"unknown {option('normalize').rstrip('=')} mode {name!r}; choose one of {', '.join(MODES)}")
    row = MODES[name]
    mean, std = (row.mean, row.std) if channels == 3 else ((sum(row.mean) / 3,), (sum(row.std) / 3,))
    return Normalization(name, tuple(round(255 * m, 10) for m in mean), tuple(round(255 * s, 10) for s in std))
