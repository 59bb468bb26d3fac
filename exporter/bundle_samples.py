"""Which labelled evaluation samples a bundle carries for device runs (`agent/eval_samples.npz`), and why.

`edgex hil run --eval-samples N` scores the bundle's own copy of the evaluation samples on the
device. A bundle stays lean: by default that file is capped at `DEFAULT_CAP_BYTES`, 1 MB
(1,000,000 bytes: MB is a power of 1000, as everywhere in edgex, exporter/units.py), and holds as
many samples as fit; `--bundle-samples N` (`bundle_samples=N` in Python) keeps N instead, whatever
their size (0: none, and no file). The record (`SampleChoice.record`) goes into the report and the
manifest as `bundle_samples`: how many were kept of how many, their bytes, and why.

Which samples: deterministic, no randomness. When every sample is kept they stay in the data's
order. Otherwise they are taken class by class in turn (round-robin over the label classes in
ascending order, each class's samples in data order), so the kept samples, and any first k of them
(what a device run with `--eval-samples k` scores), are as balanced across the classes as the data
allow. The file is written uncompressed (`numpy.savez`), so its size is known before it is written.

Example:
    >>> ds = Dataset(np.zeros((12, 4), np.float32), np.array([0] * 8 + [1] * 4), "eval")
    >>> balanced_order(ds.y).tolist()[:6]
    [0, 8, 1, 9, 2, 10]
    >>> choice = choose_samples(ds, count=4)
    >>> choice.record["kept"], choice.record["of"], choice.record["by"], np.load(io.BytesIO(choice.data))["y"].tolist()
    (4, 12, 'flag', [0, 1, 0, 1])
    >>> record = choose_samples(ds, cap_bytes=800).record      # ~500 B of headers, then 24 B per sample
    >>> record["kept"], record["bytes"] <= 800, record["per_sample_bytes"]
    (7, True, 24)
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from exporter.data import Dataset
from exporter.option_names import option, spelled

__all__ = ["DEFAULT_CAP_BYTES", "EVAL_PATH", "SampleChoice", "balanced_order", "choose_samples", "samples_note"]

DEFAULT_CAP_BYTES = 1_000_000
EVAL_PATH = "agent/eval_samples.npz"
_HEADER_SLACK = 64          # an .npy header is padded to 64 bytes; a longer shape may take one more block


@dataclass(frozen=True)
class SampleChoice:
    """The samples file's bytes (None: no file) and its record for the report and manifest."""

    data: bytes | None
    record: dict


def balanced_order(y: np.ndarray) -> np.ndarray:
    """Sample indices taking the label classes in turn: the first of each class, then the second, ...

    Args:
        y: class indices, one per sample.

    Returns:
        A permutation of `range(len(y))`; classes in ascending order within each round.
    """
    y = np.asarray(y)
    rank = np.empty(len(y), dtype=np.int64)
    for cls in np.unique(y):
        where = np.flatnonzero(y == cls)
        rank[where] = np.arange(len(where))          # the k-th sample of its class goes in round k
    return np.lexsort((y, rank))


def _npz(arrays: dict) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _arrays(part: Dataset, ref: np.ndarray | None) -> dict:
    """The file's arrays: `x` (or `x0`, `x1`, ... in the model's input order), `y` and the original's `ref`."""
    from exporter.io_names import data_names

    arrays = {**dict(zip(data_names(len(part.inputs)), part.inputs)), "y": part.y}
    return arrays if ref is None else {**arrays, "ref": ref}


def _fitting(eval_ds: Dataset, with_ref: bool, cap_bytes: int) -> tuple[int, int]:
    """(how many samples fit in `cap_bytes`, bytes per sample), the file's fixed overhead included."""
    ref = np.zeros(0, dtype=np.intp) if with_ref else None
    arrays = _arrays(eval_ds.take(slice(0, 0)), ref)
    overhead = len(_npz(arrays)) + _HEADER_SLACK * len(arrays)
    per_sample = sum(a[0].nbytes for a in eval_ds.inputs) + eval_ds.y.itemsize + (ref.itemsize if with_ref else 0)
    return max(0, min(len(eval_ds), (cap_bytes - overhead) // per_sample)), per_sample


def choose_samples(eval_ds: Dataset | None, keras_model=None, io_signature=None, *, count: int | None = None,
                   cap_bytes: int = DEFAULT_CAP_BYTES) -> SampleChoice:
    """Pick the labelled eval samples a bundle carries and write them as one .npz.

    With the original Keras model, the file also carries its top-1 answers (`ref`) on the kept
    samples, so that a device run's accuracy is compared with the original's on the same samples.

    Args:
        eval_ds: the evaluation data set, or None (no file, record None).
        keras_model: the original model, for the reference answers (default None: none stored).
        io_signature: the model's IOSignature (its label output); None: the first output.
        count: keep this many (the first of `balanced_order` when fewer than all), whatever their size;
            0 keeps none. Default None: as many as fit in `cap_bytes`.
        cap_bytes: the file's size limit when `count` is None (default 1 MB).

    Returns:
        The SampleChoice; `data` is None when no sample is kept (or the data have no labels).
    """
    if eval_ds is None:
        return SampleChoice(None, None)
    record = {"file": None, "kept": 0, "of": len(eval_ds), "bytes": 0, "by": "flag" if count is not None else "cap",
              "requested": count, "cap_bytes": None if count is not None else int(cap_bytes),
              "per_sample_bytes": None, "order": None}
    if eval_ds.y is None:
        return SampleChoice(None, record | {"by": "no labels"})
    fit, per_sample = _fitting(eval_ds, keras_model is not None, int(cap_bytes))
    kept = min(count, len(eval_ds)) if count is not None else fit
    record["per_sample_bytes"] = per_sample
    if kept == 0:
        return SampleChoice(None, record)
    whole = kept == len(eval_ds)
    part = eval_ds.take(slice(None) if whole else balanced_order(eval_ds.y)[:kept])
    ref = None
    if keras_model is not None:
        scores = keras_model.predict(part.keras_x, verbose=0, batch_size=256)
        scores = scores[io_signature.label if io_signature is not None else 0] if isinstance(scores, list) else scores
        ref = np.argmax(scores, axis=-1)
    data = _npz(_arrays(part, ref))
    while count is None and len(data) > cap_bytes and kept > 0:      # the slack should make this never run
        kept -= 1
        part, ref = part.take(slice(0, kept)), None if ref is None else ref[:kept]
        data = _npz(_arrays(part, ref))
    order = "data order" if whole else "classes in turn (balanced)"
    return SampleChoice(data if kept else None,
                        record | {"file": EVAL_PATH if kept else None, "kept": kept, "bytes": len(data) if kept else 0,
                                  "order": order})


def samples_note(record: dict | None) -> str | None:
    """One line for the report: how many eval samples the bundle keeps for device runs, of how many, and why."""
    if record is None:
        return None
    kept, of = record["kept"], record["of"]
    if record["by"] == "no labels":
        return (f"device-run samples: none in the bundle: the {of:,} evaluation samples have no labels "
                "(edgex hil run --eval-samples needs labelled ones)")
    ask = option("bundle_samples", record["requested"]) if record["requested"] is not None else None
    held = f"{EVAL_PATH} holds {kept:,} of the {of:,} labelled eval samples ({record['bytes']:,} B"
    everything = f"device-run samples: {EVAL_PATH} holds all {of:,} labelled eval samples"
    if record["by"] == "flag":
        if kept == 0:
            return f"device-run samples: none in the bundle ({ask}): edgex hil run --eval-samples has none to score"
        if kept == of:
            return f"{everything} ({record['bytes']:,} B, {ask})"
        return f"device-run samples: {held}), as {ask} asked; {record['order']}"
    cap = f"the {record['cap_bytes'] / 1e6:g} MB cap ({record['cap_bytes']:,} B)"
    other = spelled(cli="--bundle-samples N", api="bundle_samples=N")
    if kept == 0:
        return (f"device-run samples: none in the bundle: one sample takes {record['per_sample_bytes']:,} B, more "
                f"than {cap}; {other} keeps N anyway")
    if kept == of:
        return f"{everything} ({record['bytes']:,} B, within {cap})"
    return (f"device-run samples: {held}, {record['per_sample_bytes']:,} B each): no more fit in {cap}; "
            f"{record['order']}; {other} keeps N instead")
