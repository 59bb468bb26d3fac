"""Sparse encoding on phones: pruned weights stored in TFLite's sparse tensor format.

`--sparse-encoding auto|on|off` (`sparse_encoding=`; a recipe's `sparse_encoding`), default `auto`, for the
targets whose devices run LiteRT on an application CPU (android, linux: `Target.sparse_tensors`, targets/cpu.py):

- exporter/sparse/decision.py: the setting, what refuses it (other targets, int8 and dynamic-range models) and
  `auto`'s rule: on when at least 30 % of some kernel's values are zero in the Keras model that is converted.
- exporter/sparse/step.py: the export step after `build` that converts again with
  `tf.lite.Optimize.EXPERIMENTAL_SPARSITY` and keeps both models, so the comparison is measured in one run.
- exporter/sparse/tensors.py: the sparse tensors of a .tflite, read from the flatbuffer (`tensor.sparsity`).
- exporter/sparse/xnnpack.py: whether XNNPACK's sparse inference can apply, assessed from its documented conditions.
- exporter/sparse/figures.py: the figures (dense bytes and host latency, same run and threads; outputs compared)
  and the report's section.

Nothing here is imported by `edgex --help`; TensorFlow only when a model is converted.
"""
