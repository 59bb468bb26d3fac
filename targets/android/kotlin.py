"""The Kotlin class of an android bundle, rendered from its AppSpec (targets/android/app_spec.py).

Only literals made here reach the source: strings escaped for Kotlin (`kotlin_string`: every
character outside printable ASCII, and `\\`, `"`, `$`, `@`, as escapes), floats as the exact float32 the
.tflite stores (`float_literal`), integers. The class name is `library_name`'s (letters and digits).

Example:
    >>> kotlin_string('a"b$c\\\\d\\n')
    '"a\\\\"b\\\\$c\\\\\\\\d\\\\n"'
    >>> float_literal(0.003921568859368563), float_literal(255.0), float_literal(1e-05)
    ('0.003921569f', '255.0f', '1e-05f')
"""
from __future__ import annotations

import math
import re

from targets.android import kotlin_template as tpl

__all__ = ["DEFAULT_PACKAGE", "fill", "float_literal", "kotlin_source", "kotlin_string"]

DEFAULT_PACKAGE = "com.example.edgex"
"""The package of the generated class; apps move the file into theirs and change this line."""

_SLOT = re.compile(r"@@([A-Z0-9_]+)@@")
_ESCAPES = {"\\": "\\\\", '"': '\\"', "$": "\\$", "@": "\\u0040", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def kotlin_string(text: str) -> str:
    """A Kotlin string literal of `text` (no template expansion, no raw control characters)."""
    def one(c: str) -> str:
        if c in _ESCAPES:
            return _ESCAPES[c]
        if " " <= c <= "~":
            return c
        return "".join(f"\\u{unit:04x}" for unit in _utf16(c))
    return '"' + "".join(one(c) for c in text) + '"'


def _utf16(c: str) -> list[int]:
    """The UTF-16 code units of one character (a surrogate pair above U+FFFF)."""
    data = c.encode("utf-16-be", "surrogatepass")
    return [int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2)]


def float_literal(value: float) -> str:
    """A Kotlin Float literal that gives back `value` rounded to float32, exactly (as the .tflite stores it).

    Raises:
        ValueError: a value that is not finite (no model figure is).
    """
    import numpy as np

    single = np.float32(value)
    if not math.isfinite(single):
        raise ValueError(f"{value!r} has no Kotlin Float literal")
    return str(single) + "f"            # numpy's shortest text that gives back this float32


def _ints(values) -> str:
    return ", ".join(str(int(v)) for v in values)


def _port(entry: dict) -> str:
    """`Port(...)` of one `io_record` entry."""
    scale, zero = entry["scale"], entry["zero_point"]
    scales = [] if scale is None else (scale if entry["per_channel"] else [scale])
    zeros = [] if zero is None else (zero if entry["per_channel"] else [zero])
    axis = entry["axis"] if entry["per_channel"] else -1
    return (f"            Port({kotlin_string(entry['name'])}, {int(entry['slot'])}, intArrayOf({_ints(entry['shape'])}), "
            f"{kotlin_string(entry['dtype'])}, floatArrayOf({', '.join(map(float_literal, scales))}), "
            f"intArrayOf({_ints(zeros)}), {int(axis)}, {int(entry['qmin'] or 0)}, {int(entry['qmax'] or 0)})")


def _image_slots(image) -> dict[str, str]:
    """The slots of the image constants and `pixels` (empty when the model has no image input)."""
    if image is None:
        return {"IMAGE_CONSTANTS": "", "PIXELS": "", "BITMAP_IMPORT": ""}
    source = ("As recorded by edgex from the image folders the model was calibrated and evaluated with." if image.recorded
              else "Not recorded: the model's data were arrays, so this is --normalize's default, pixel / 255.\n"
                   "         * Set MEAN and STD to what the model was trained with.")
    constants = fill(tpl.IMAGE_CONSTANTS, {
        "IMAGE_INPUT": str(image.input), "HEIGHT": str(image.height), "WIDTH": str(image.width),
        "CHANNELS": str(image.channels), "NORMALIZE_MODE": image.mode, "NORMALIZE_SOURCE": source,
        "MEAN": ", ".join(map(float_literal, image.mean)), "STD": ", ".join(map(float_literal, image.std)),
        "RECORDED": "true" if image.recorded else "false"})
    return {"IMAGE_CONSTANTS": constants, "PIXELS": fill(tpl.PIXELS, {"COLOR": image.color}),
            "BITMAP_IMPORT": "import android.graphics.Bitmap\n"}


def _classify_slots(spec) -> dict[str, str]:
    """The `classify` overloads: a FloatArray for a single input, a Bitmap when that input is an image."""
    single = len(spec.inputs) == 1
    bitmap = single and spec.image is not None
    usage = "bitmap" if bitmap else ("floatArrayOf(/* INPUTS[0].size values */)" if single
                                     else "listOf(/* one FloatArray per input, INPUTS order */)")
    return {"CLASSIFY": (tpl.CLASSIFY_ONE if single else "") + (tpl.CLASSIFY_BITMAP if bitmap else ""),
            "USAGE_ARG": usage}


def kotlin_source(spec, *, version: str, package: str = DEFAULT_PACKAGE) -> str:
    """The Kotlin source of the model's class (`<spec.class_name>.kt`).

    Args:
        spec: the AppSpec.
        version: edgex's version, named in the header.
        package: the Kotlin package (dotted lower-case identifiers).

    Returns:
        The source text.
    """
    slots = {"CLASS": spec.class_name, "VERSION": version, "SHA256": spec.sha256, "PACKAGE": package,
             "THREADS": str(int(spec.threads)), "LABEL_OUTPUT": str(int(spec.label_output)),
             "LABELS_ASSET": kotlin_string("labels.txt") if spec.labels else "null",
             "INPUTS": ",\n".join(map(_port, spec.inputs)), "OUTPUTS": ",\n".join(map(_port, spec.outputs)),
             **_image_slots(spec.image), **_classify_slots(spec)}
    text = fill(tpl.HEADER, slots)
    if "@@" in text:               # a slot the pattern missed: never ship it ("@" in names is escaped)
        raise ValueError(f"unfilled slot in the Kotlin template near {text[text.index('@@'):][:40]!r}")
    return text


def fill(template: str, slots: dict[str, str]) -> str:
    """`template` with every `@@KEY@@` replaced by `slots[KEY]`, in one pass (a value is never scanned again).

    Raises:
        KeyError: a slot without a value.
    """
    return _SLOT.sub(lambda m: slots[m.group(1)], template)
