"""What an export says about the model in its TFLite metadata: name, version, description, author, licence.

Given with `--model-name`, `--model-version`, `--model-description`, `--author` and `--license`
(`model_name=`, ... in Python). Each must be text that is valid UTF-8 (an argument holding bytes
that are not UTF-8 reaches Python as lone surrogates, and is refused), within its length, without
control characters (tabs and line breaks are allowed in the description and the licence) and
without the Unicode controls that reorder text on screen. The name and version cannot be empty;
an empty author, licence or description writes none. Unset, the name is the model file's stem
(the demo's: "edgex demo"), the version "1", the description says what edgex made for which
target; author and licence stay empty.

Only the standard library is imported here (`edgex --help` stays light).

Example:
    >>> ModelInfo(author="Jane Doe").checked().given()
    ['author']
    >>> ModelInfo(version="").checked()
    Traceback (most recent call last):
    ...
    exporter.errors.UsageError: model_version= is empty: give the model's version, or leave it out for "1"
    >>> ModelInfo(author="caf\\udce9").checked()       # a Latin-1 byte in a UTF-8 command line
    Traceback (most recent call last):
    ...
    exporter.errors.UsageError: author= is not valid UTF-8 text (character 4 is an undecodable byte, 0xe9)
"""
from __future__ import annotations

import dataclasses
import unicodedata
from dataclasses import dataclass

from exporter.errors import UsageError
from exporter.option_names import option

LIMITS = {"name": 256, "version": 64, "description": 4000, "author": 256, "license": 4000}
"""The most characters each field may hold."""
OPTIONS = {"name": "model_name", "version": "model_version", "description": "model_description",
           "author": "author", "license": "license"}
"""Each field's export option (its Python parameter name; exporter/option_names.py spells it)."""
_MULTILINE = frozenset({"description", "license"})
_REQUIRED = {"name": "the model's name, or leave it out for the model file's name", "version": 'the model\'s version, '
             'or leave it out for "1"'}
_REORDERING = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
DEFAULT_VERSION = "1"
DEMO_NAME = "edgex demo"


@dataclass(frozen=True)
class ModelInfo:
    """The model's name, version, description, author and licence as given (None: not given)."""

    name: str | None = None
    version: str | None = None
    description: str | None = None
    author: str | None = None
    license: str | None = None

    def given(self) -> list[str]:
        """The options given (their parameter names), in field order."""
        return [OPTIONS[f.name] for f in dataclasses.fields(self) if getattr(self, f.name) is not None]

    def checked(self) -> ModelInfo:
        """This info after checking every field given.

        Raises:
            UsageError: a field that is not text, not UTF-8, too long, empty where it cannot be, or
                holding control characters; naming its option.
        """
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is not None:
                _check(f.name, value)
        return self

    def resolved(self, name: str, description: str) -> ModelInfo:
        """The info to write: the defaults `name` and `description` where none was given, version "1"."""
        return ModelInfo(name=self.name or name, version=self.version or DEFAULT_VERSION,
                         description=description if self.description is None else self.description,
                         author=self.author, license=self.license)


def _check(field: str, value) -> None:
    if not isinstance(value, str):
        raise UsageError(f"{option(OPTIONS[field])} must be text (str), not {type(value).__name__}")
    bad = next((i for i, ch in enumerate(value) if "\ud800" <= ch <= "\udfff"), None)
    if bad is not None:
        byte = ord(value[bad]) - 0xDC00 if 0xDC80 <= ord(value[bad]) <= 0xDCFF else None
        shown = f", 0x{byte:02x}" if byte is not None else ""
        raise UsageError(f"{option(OPTIONS[field])} is not valid UTF-8 text (character {bad + 1} is an undecodable "
                         f"byte{shown})")
    if not value and field in _REQUIRED:
        raise UsageError(f"{option(OPTIONS[field])} is empty: give {_REQUIRED[field]}")
    if len(value) > LIMITS[field]:
        raise UsageError(f"{option(OPTIONS[field])} is {len(value):,} characters long; at most {LIMITS[field]:,} "
                         "fit in the model's metadata")
    allowed = "\t\n" if field in _MULTILINE else ""
    control = next((ch for ch in value if (unicodedata.category(ch) == "Cc" and ch not in allowed)
                    or ch in _REORDERING), None)
    if control is not None:
        where = "" if field in _MULTILINE else " (tabs and line breaks only in the description and licence)"
        raise UsageError(f"{option(OPTIONS[field])} holds the control character U+{ord(control):04X}{where}")


def for_target(info: ModelInfo | None, target) -> ModelInfo:
    """`info` checked for `target`: metadata options are taken only by targets that write TFLite metadata.

    Args:
        info: the export's ModelInfo (None: nothing given).
        target: the Target (its `tflite_metadata` says whether it writes metadata).

    Raises:
        UsageError: a field that does not check out, or metadata options for a target that writes no
            metadata (naming the targets that do).
    """
    info = (info or ModelInfo()).checked()
    if info.given() and not target.tflite_metadata:
        from targets.base import all_targets

        takers = ", ".join(t.name for t in all_targets() if t.tflite_metadata)
        raise UsageError(f"{', '.join(option(o) for o in info.given())}: target {target.name} writes no TFLite metadata "
                         f"into its model (its runtime and tools do not read it); the targets that do: {takers}")
    return info
