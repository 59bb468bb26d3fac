"""The manifest of a bundle: what an export records, edgex's format tag, checks of what it says.

Every manifest edgex writes carries `"format": "edgex-bundle"` and `"format_version": 1`, so a
folder or archive is known as an edgex bundle by its manifest, not by the mere presence of a file
called manifest.json. Its file list maps safe relative POSIX paths to
`{"sha256": <64 hex digits>, "bytes": <int >= 0>}`; device runs (`hil/<run>.json`) are never in it.
The rest is what the export recorded (`manifest_for`): status, resolved profile and recipe,
stages, checks, measurements, graph, notes and library versions, each data set's value range
(`data`) with any warning about them, and `preprocessing`: how images read from folders were
made into model inputs (decoder, color, resize, normalization mean/std/scale/offset), or null.
`input_shapes` maps each model input's name to the shape it was measured at: for inputs with
dynamic (-1) dims the one given with `--input-shape`, which the device agent resizes to.
`io` lists every input and output in the model's order: `name` (what data and apps use: the .tflite
signature's), `tensor`, `index` (the tensor the device agent feeds or reads), `slot` (its place among
LiteRT's buffers), `shape` and `dtype`, the I/O contract read from the .tflite (`scale`, `zero_point`, `qmin`,
`qmax`, `per_channel`, `axis`: exporter/io_contract.py), `label_output`, the output labels and accuracy are
for (exporter/io_names.py), and `formulas`: how an app quantizes inputs and dequantizes outputs.
`bridge` records a Keras 3 model bridged into tf_keras (exporter/keras3/): the Keras version, the
layers translated and added, and the proof's max |Keras 3 - tf_keras|; null for any other model.
`metadata` records the TFLite metadata in model.tflite (exporter/tflite_metadata/): name, version,
description, author, licence, each input's content, normalization and value range, each output's
associated files (labels.txt), and `source` (edgex, or the input .tflite that carried it); null when
the model has none (targets whose runtimes do not read it: microcontrollers, Ethos-U, Edge TPU).
`bundle_samples` says how many labelled eval samples `agent/eval_samples.npz` keeps for device runs, of
how many, their bytes and why (`by`: the 1 MB `cap`, or the `flag` --bundle-samples); null without eval data.
`sizes` groups the byte figures as stored, downloaded and ram (exporter/sizes.py); `weight_values` lists
every kernel's unique values before and after conversion when stages ran (else null).
`optimize` (only in the bundle `edgex optimize` picked) records the study, its storage, the trial and its params.
`compression` records TFLM weight compression of a microcontroller bundle (targets/microcontroller/compression.py):
whether it ran and why, the model bytes before and after, `bit_exact` (samples identical of total on TFLM), and
per constant tensor its shape, quantization, unique values, bits, table mode, bytes before/after and status.

Example:
    >>> body = stamp({"status": "pass"}, {"model.tflite": b"m"})
    >>> body["format"], body["format_version"], body["files"]["model.tflite"]["bytes"]
    ('edgex-bundle', 1, 1)
    >>> parse_manifest(encode(body), "demo")["status"]
    'pass'
"""
from __future__ import annotations

import hashlib
import json
import string

from exporter.errors import IntegrityError
from exporter.sizes import size_record

MANIFEST = "manifest.json"
FORMAT = "edgex-bundle"
FORMAT_VERSION = 1
SCHEMA_VERSION = 1          # kept beside the format tag for readers of older bundles
HIL_DIR = "hil"
HIL_PREFIX = HIL_DIR + "/"
MAX_MANIFEST_BYTES = 64 << 20
_HEX = frozenset(string.hexdigits.lower())


def sha256(data: bytes) -> str:
    """The hex sha256 of `data`."""
    return hashlib.sha256(data).hexdigest()


def stamp(manifest: dict, files: dict[str, bytes]) -> dict:
    """The manifest body to write: `manifest` plus the format tag, versions and the file list.

    Args:
        manifest: what the export records (status, profile, recipe, ...).
        files: relative path → bytes of every file of the bundle but the manifest.

    Returns:
        A new dict; `manifest` is not changed.
    """
    listed = {name: {"sha256": sha256(data), "bytes": len(data)} for name, data in sorted(files.items())}
    return dict(manifest, format=FORMAT, format_version=FORMAT_VERSION, schema_version=SCHEMA_VERSION,
                files=listed)


PROVENANCE_KINDS = ("optimize",)
"""What may say where an export came from (`export(provenance=...)`): `optimize`, the search that picked it
(exporter/optimize/pick.py: study, storage, trial, params)."""


def provenance_record(provenance) -> dict:
    """`provenance` checked: a dict of known kinds (PROVENANCE_KINDS), each a JSON object; {} for None.

    Example:
        >>> provenance_record({"optimize": {"study": "s", "trial": 3}})
        {'optimize': {'study': 's', 'trial': 3}}

    Raises:
        UsageError: an unknown kind, or a value that is not a JSON object.
    """
    from exporter.errors import UsageError

    if provenance is None:
        return {}
    if not isinstance(provenance, dict) or not set(provenance) <= set(PROVENANCE_KINDS):
        raise UsageError(f"provenance= takes a dict with the keys {', '.join(PROVENANCE_KINDS)}; got {provenance!r:.80}")
    for kind, value in provenance.items():
        if not isinstance(value, dict):
            raise UsageError(f"provenance={{{kind!r}: ...}} must be a dict, not {type(value).__name__}")
    try:
        return json.loads(json.dumps(provenance, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise UsageError(f"provenance= must hold JSON data: {exc}") from None


def manifest_for(report, profile, provenance: dict | None = None) -> dict:
    """What an export records in its bundle's manifest (`stamp` adds the format tag and file list).

    Args:
        report: the export's Report (status, versions, recipe, stages, checks, measurements, graph, notes).
        profile: the resolved DeviceProfile, recorded whole so that the export can be re-run.
        provenance: where the export came from (`provenance_record`), e.g. {"optimize": {"study", "storage",
            "trial", "params"}} for the pick of `edgex optimize`; recorded under its own keys. Default None.

    Returns:
        A JSON-ready dict.
    """
    return {
        **provenance_record(provenance),
        "tool": "edgex", "status": report.status, "created": report.created, "versions": report.versions,
        "target": report.target, "profile": profile.model_dump(mode="json"),
        "recipe": {**report.recipe, "convert": {"mode": report.mode, "io_dtype": report.io_dtype}},
        "stages": report.stages,
        "source": report.model, "checks": [c.to_dict() for c in report.checks],
        "measurements": {k: m.to_dict() for k, m in report.measurements.items()}, "graph": report.graph,
        "notes": report.notes,
        "input_shapes": {t["name"]: t["shape"] for t in report.graph.get("inputs", [])},
        # how image folders became inputs (resize, color, normalization), for an app to do the same;
        # null when the data were arrays (edgex applied none). See exporter/image_reader.py.
        "preprocessing": report.preprocessing, "data": report.data, "warnings": report.warnings,
        "io": report.io,               # every input and output: name, tensor, index, shape, dtype, scale, zero point
        "bridge": report.bridge,       # a Keras 3 model: {"from", "layers", "added_layers", "max_abs_error"}; else null
        # the eval samples kept in agent/eval_samples.npz: kept of `of`, bytes, `by` cap or flag (exporter/bundle_samples.py)
        "bundle_samples": report.bundle_samples,
        "metadata": report.metadata,   # the TFLite metadata in model.tflite (exporter/tflite_metadata/); else null
        # bytes stored, downloaded and in RAM, each kind's figures headline first (exporter/sizes.py)
        "sizes": size_record(report.measurements),
        # unique values per kernel in Keras and in the .tflite, after the stages (exporter/analysis/unique_values.py)
        "weight_values": report.weight_values,
        # TFLM weight compression: outcome, bit-exactness proof, one row per constant tensor; else null
        "compression": report.compression,
        # TFLite sparse weights (android, linux): setting, why, tensors, XNNPACK assessment (exporter/sparse/); else null
        "sparse_encoding": report.sparse_encoding,
    }


def encode(body: dict) -> bytes:
    """The manifest's bytes as written to `manifest.json` (sorted keys, indented)."""
    return json.dumps(body, indent=2, sort_keys=True).encode()


def problems_message(head: str, problems: list[str]) -> str:
    """One line for one problem (`head: problem`), else `head:` and one indented line per problem."""
    if len(problems) == 1:
        return f"{head}: {problems[0]}"
    return f"{head}:\n  " + "\n  ".join(problems)


def is_hil_run(name: str) -> bool:
    """True for a device run's path inside a bundle: `hil/<run>.json`, directly under hil/.

    Names starting with "." are temporaries of a run being written (`store_run`), not runs.
    """
    run = name[len(HIL_PREFIX):]
    return name.startswith(HIL_PREFIX) and "/" not in run and not run.startswith(".") and run.endswith(".json") \
        and len(run) > len(".json")


def name_problem(name) -> str | None:
    """Why `name` cannot be a file of a bundle (None when it can).

    Accepted: a relative POSIX path of non-empty parts, none of them `.` or `..`, without
    backslashes, NUL or drive letters, that is neither the manifest nor under hil/.
    """
    if not isinstance(name, str) or not name:
        return f"file name {name!r} is not a non-empty string"
    parts = name.split("/")
    if name.startswith("/") or "\\" in name or "\0" in name or (len(name) > 1 and name[1] == ":"):
        return f"absolute or non-POSIX path: {name!r}"
    if any(part in ("", ".", "..") for part in parts):
        return f"path escapes the bundle or has empty parts: {name!r}"
    if name == MANIFEST or parts[0] == HIL_DIR:
        return f"{name!r} cannot be listed in the manifest"
    return None


def _entry_problem(name, meta) -> str | None:
    problem = name_problem(name)
    if problem:
        return problem
    if not isinstance(meta, dict):
        return f"entry for {name!r} is a {type(meta).__name__}, not an object with sha256 and bytes"
    digest, size = meta.get("sha256"), meta.get("bytes")
    if not isinstance(digest, str) or len(digest) != 64 or not set(digest) <= _HEX:
        return f"entry for {name!r} has no valid sha256 (64 lower-case hex digits)"
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        return f"entry for {name!r} has no valid byte count"
    return None


def parse_manifest(raw: bytes, where: str, *, require_tag: bool = False) -> dict:
    """Parse a manifest's bytes and check every field verification relies on.

    A manifest without the format tag (written by an older edgex) is accepted unless
    `require_tag`; one whose tag is not edgex's, or whose format_version is newer than this edgex
    knows, is not.

    Args:
        raw: the bytes of manifest.json.
        where: the bundle or archive, for messages.
        require_tag: refuse a manifest without the format tag (default False).

    Returns:
        The manifest as a dict.

    Raises:
        IntegrityError: not JSON, not an object, a foreign or newer format, or a file list of the
            wrong shape (naming the first bad entry).
    """
    try:
        manifest = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise IntegrityError(f"{where}: {MANIFEST} is not valid JSON: {exc}") from None
    if not isinstance(manifest, dict):
        raise IntegrityError(f"{where}: {MANIFEST} is not a JSON object")
    problem = format_problem(manifest, require_tag=require_tag)
    if problem:
        raise IntegrityError(f"{where}: {MANIFEST} is {problem}")
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise IntegrityError(f"{where}: {MANIFEST} has no file list (\"files\" must be an object)")
    for name, meta in files.items():
        problem = _entry_problem(name, meta)
        if problem:
            raise IntegrityError(f"{where}: {MANIFEST} has a bad file list: {problem}")
    return manifest


def format_problem(manifest: dict, *, require_tag: bool = True) -> str | None:
    """Why `manifest` is not one edgex may replace or read (None when it is).

    Args:
        manifest: a parsed JSON object.
        require_tag: refuse a manifest without the format tag (older edgex, or someone else's).

    Returns:
        A phrase that follows "manifest.json is", such as "someone else's (...)", or None.
    """
    tag, version = manifest.get("format"), manifest.get("format_version")
    if tag is None and not require_tag:
        return None
    if tag is None:
        if manifest.get("tool") == "edgex" or "schema_version" in manifest:
            return "from an older edgex, without the format tag"
        return f"someone else's (no \"format\": \"{FORMAT}\")"
    if tag != FORMAT:
        return f"someone else's (format {str(tag)[:40]!r})"
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        return f"an edgex manifest with a bad format_version {str(version)[:20]!r}"
    if version > FORMAT_VERSION:
        return f"format_version {version}, newer than this edgex reads ({FORMAT_VERSION})"
    return None
