"""The export step that stores pruned weights with TFLite's sparse encoding, between `build` and `describe`.

`encode(request, inputs, built)` decides (exporter/sparse/decision.py); when on, it converts the Keras model that
`build` converted once more, with `tf.lite.Optimize.EXPERIMENTAL_SPARSITY` added to the same conversion settings,
and returns `built` with the sparse model, which is measured and bundled. The model without sparse encoding stays
in `built.sparse.dense_tflite` (`describe` gives it the same TFLite metadata), so that its bytes and host latency
are measured in the same run (exporter/sparse/figures.py). An export to several targets shares one `build` and
runs this step per target: only android and linux get the sparse model.

`auto` keeps the dense model when the converter encoded no tensor or the sparse model is not smaller; `on` keeps
the sparse one whenever the converter encoded a tensor. Either way `built.sparse` records the setting, what was
decided and why; the report and manifest carry it as `sparse_encoding`.

Example:
    >>> from exporter import steps
    >>> request = steps.resolve(steps.ExportArgs(sources=steps.Sources(demo=True), quantize="float32"))
    >>> inputs = steps.check_data(request, steps.load(request))
    >>> built = encode(request, inputs, steps.build(request, inputs))     # the demo is not pruned: auto stays off
    >>> built.sparse.applied, built.sparse.reason.startswith("auto: no kernel has 30 % zeros")
    (False, True)
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from exporter.sparse.decision import WeightZeros, decide, densest, setting, why_not, zero_fractions
from exporter.sparse.tensors import SparseTensor, summary

FIGURES = ("model_size", "model_size_dense", "host_latency_p50", "host_latency_p50_dense", "host_latency_ratio_sparse",
           "sparse_tensors", "sparse_max_abs_error")
"""The figures of a sparse export (exporter/sparse/figures.py), named in the record."""


@dataclass(frozen=True)
class SparseEncoding:
    """What the sparse-encoding step decided and made.

    Attributes:
        setting: "auto", "on" or "off", as resolved.
        applied: the bundled model is the sparse one.
        reason: why, in words.
        densest: the Keras kernel with the most zeros (None without kernels or with the setting off).
        tensors: the sparse tensors of the bundled model.
        xnnpack: exporter/sparse/xnnpack.py's assessment, None when not applied.
        dense_tflite: the model converted without sparse encoding (with the same metadata after `describe`), for
            the measurements; None when not applied.
    """

    setting: str
    applied: bool
    reason: str
    densest: WeightZeros | None = None
    tensors: tuple[SparseTensor, ...] = ()
    xnnpack: dict | None = None
    dense_tflite: bytes | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        """The report's and manifest's `sparse_encoding`: JSON-ready, the bytes left out (see `figures`)."""
        return {"setting": self.setting, "applied": self.applied, "reason": self.reason,
                "densest_kernel": None if self.densest is None else self.densest.to_dict(),
                "tensors": [t.to_dict() for t in self.tensors], "summary": summary(list(self.tensors)),
                "xnnpack_sparse_inference": self.xnnpack, "figures": list(FIGURES) if self.applied else []}


def _keep_dense(built, record: SparseEncoding, note: str | None):
    """`built` as converted, with the record and an optional note."""
    return dataclasses.replace(built, sparse=record, notes=[*built.notes, *([note] if note else [])])


def _refused(request, built, value: str, on: bool, top, refusal: str):
    """`auto` where the target or mode cannot take sparse tensors: the dense model, and a note when it matters."""
    record = SparseEncoding(value, False, f"auto: {refusal}", top)
    matters = on or not request.target.sparse_tensors      # a pruned model on a phone, or any non-CPU target
    qualifies = f" ({top.name} has {top.zeros * 100:.1f} % zeros)" if on else ""
    note = f"sparse encoding (auto) stays off{qualifies}, as it is {refusal}"
    return _keep_dense(built, record, note if matters else None)


def encode(request, inputs, built):
    """`built` with its weights in TFLite's sparse encoding when the setting asks for it (module docstring).

    Args:
        request: the resolved export (target, profile, the setting).
        inputs: the loaded model and its data (a given .tflite is returned as it is).
        built: what `build` made: the converted model and the conversion settings (`built.config`).

    Returns:
        A new Built with `sparse` set (and the sparse model, when applied); `built` itself for a .tflite input.

    Raises:
        ConversionError: the converter failed with EXPERIMENTAL_SPARSITY.
        UsageError: a setting other than auto, on or off.
    """
    if inputs.is_tflite:
        return built
    value = setting(request)
    if value == "off":
        return _keep_dense(built, SparseEncoding("off", False, "off (as asked)"), None)
    model = built.converted_from if built.converted_from is not None else inputs.loaded.model
    weights = zero_fractions(model)
    on, reason = decide(value, weights)
    top = densest(weights)
    refusal = why_not(request.target, built.mode)          # `on` was refused before any work (inputs.load)
    if refusal is not None:
        return _refused(request, built, value, on, top, refusal)
    if not on:
        return _keep_dense(built, SparseEncoding(value, False, reason, top), None)
    return _convert(inputs, built, value, reason, top, model)


def _convert(inputs, built, value: str, reason: str, top, model):
    """Convert `model` again with sparse encoding; the Built to bundle (sparse, or dense with the reason)."""
    from exporter import progress
    from exporter.analysis.graph import Graph
    from exporter.sparse.tensors import sparse_tensors
    from exporter.sparse.xnnpack import assess
    from exporter.stages.convert import convert

    progress.status("converting again with sparse encoding (tf.lite.Optimize.EXPERIMENTAL_SPARSITY)")
    calib = None if inputs.calib is None else inputs.calib.x
    sparse = convert(model, built.config.model_copy(update={"sparse": True}), calib=calib)
    tensors = tuple(sparse_tensors(sparse))
    if not tensors:
        why = ("the converter encoded no tensor: it encodes the filters of CONV_2D, DEPTHWISE_CONV_2D, TRANSPOSE_CONV "
               "and FULLY_CONNECTED that are at least 30 % zeros")
        return _keep_dense(built, SparseEncoding(value, False, f"{reason}; {why}", top), f"sparse encoding: {why}")
    if value == "auto" and len(sparse) >= len(built.tflite):
        why = f"the sparse model is not smaller ({len(sparse):,} B, dense {len(built.tflite):,} B): dense is kept"
        return _keep_dense(built, SparseEncoding(value, False, f"{reason}; {why}", top), f"sparse encoding: {why}")
    xnnpack = assess(sparse, built.mode)
    record = SparseEncoding(value, True, reason, top, tensors, xnnpack, dense_tflite=built.tflite)
    where = "can apply" if xnnpack["applies"] else "does not apply"
    note = (f"sparse encoding ({reason}): {summary(list(tensors))}; XNNPACK's sparse inference {where} (assessed "
            f"from its documented conditions, not observed): {xnnpack['consequence']}")
    return dataclasses.replace(built, tflite=sparse, graph=Graph.from_bytes(sparse), sparse=record,
                               notes=[*built.notes, note])
