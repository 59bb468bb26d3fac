"""The conversion modes edgex knows (exporter/stages/convert.py converts them), in a module light enough for `--help`.

    >>> [mode for mode in QUANT_MODES if mode in FULL_INTEGER]
    ['int8', 'int16x8']
"""
QUANT_MODES = ("float32", "float16", "dynamic", "int8", "int16x8")
FULL_INTEGER = ("int8", "int16x8")
"""Modes whose activations are integers: they need calibration data (a representative dataset)."""
