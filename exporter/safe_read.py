"""Reading files that come from outside: regular files only, bounded sizes, strict YAML.

Every loader of user files (profiles, recipes, labels, data sets) opens them here, so a FIFO,
a directory or `/dev/zero` given as a path is refused at once instead of blocking or filling
memory, and a file over its cap is refused before it is read. YAML is parsed with
`StrictLoader`: `yaml.safe_load` semantics (no `!!python/*` tags) without anchors and aliases
(so no "billion laughs" expansion), without duplicate keys and with bounded nesting.

Example:
    >>> from exporter.profile import PROFILE_DIR
    >>> load_yaml_file(PROFILE_DIR / "coral-usb.yaml", what="profile")["target"]
    'edgetpu'
    >>> _ = Path("recipe.yaml").write_text("{base: &b {epochs: 1}, prune: *b}")
    >>> load_yaml_file("recipe.yaml", what="recipe")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    exporter.errors.ConfigError: recipe.yaml, line 1: YAML anchors and aliases (&name, *name) are not accepted; ...
"""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

import yaml
from yaml.events import AliasEvent

from exporter.errors import ConfigError, ExporterError

MAX_CONFIG_BYTES = 1024**2        # profiles and recipes: the shipped ones are < 4 KB
MAX_YAML_DEPTH = 32               # nesting of mappings and lists; profiles use 3 levels


def open_regular(path: str | Path, *, what: str, error: type[ExporterError] = ConfigError) -> BinaryIO:
    """Open a regular file for binary reading, refusing FIFOs, devices and directories first.

    The file is opened with O_NONBLOCK, so opening a FIFO does not wait for a writer, and
    checked with fstat on the open descriptor (no race between the check and the read).

    Args:
        path: the file.
        what: what the file is, for messages ("profile", "labels file", ...).
        error: the ExporterError class to raise (default ConfigError).

    Returns:
        The open file, positioned at its start; the caller closes it.

    Raises:
        error: the file is missing, unreadable or not a regular file.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = "a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "a device or socket"
            raise error(f"{path}: {what} must be a regular file, not {kind}")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bounded(path: str | Path, *, limit: int, what: str, error: type[ExporterError] = ConfigError) -> bytes:
    """Read a whole regular file of at most `limit` bytes.

    Args:
        path: the file.
        limit: the largest accepted size in bytes.
        what: what the file is, for messages.
        error: the ExporterError class to raise (default ConfigError).

    Returns:
        The file's bytes.

    Raises:
        error: missing, unreadable, not a regular file, or larger than `limit`.
    """
    with open_regular(path, what=what, error=error) as f:
        try:
            size = os.fstat(f.fileno()).st_size
            data = f.read(limit + 1) if size <= limit else b""
        except OSError as exc:
            raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if size > limit or len(data) > limit:
        raise error(f"{path}: {what} is larger than {limit:,} bytes; refused")
    return data


class _Refused(yaml.MarkedYAMLError):
    """A YAML construct StrictLoader does not accept."""


class StrictLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` without anchors, aliases or duplicate keys, and with bounded nesting."""

    def compose_node(self, parent, index):
        """Refuse anchors and aliases before they are resolved; bound the nesting depth."""
        event = self.peek_event()
        if isinstance(event, AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _Refused(problem="YAML anchors and aliases (&name, *name) are not accepted; write the values out",
                           problem_mark=event.start_mark)
        depth = getattr(self, "_edgex_depth", 0)
        if depth >= MAX_YAML_DEPTH:
            raise _Refused(problem=f"nested deeper than {MAX_YAML_DEPTH} levels", problem_mark=event.start_mark)
        self._edgex_depth = depth + 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._edgex_depth = depth

    def construct_object(self, node, deep=False):
        """Turn a value YAML cannot build (`!!int abc`, 2001-13-45, 5,000 digits) into an error at its line."""
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, TypeError, OverflowError) as exc:
            reason = str(exc).split(";")[0]        # Python's own hints (set_int_max_str_digits) do not apply
            raise _Refused(problem=f"cannot read this value: {reason}", problem_mark=node.start_mark) from None

    def construct_mapping(self, node, deep=False):
        """Refuse a key that appears twice in one mapping (YAML would keep the last silently)."""
        if isinstance(node, yaml.MappingNode):
            seen = {}
            for key_node, _ in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
                if key is not None and key in seen:
                    raise _Refused(problem=f"duplicate key {key!r} (first on line {seen[key] + 1})",
                                   problem_mark=key_node.start_mark)
                if key is not None:
                    seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def _where(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    return f", line {mark.line + 1}" if mark is not None else ""


def load_yaml_file(path: str | Path, *, what: str, limit: int = MAX_CONFIG_BYTES):
    """Read and parse one YAML file with StrictLoader (the loader of profiles and recipes).

    Args:
        path: the file.
        what: what the file is, for messages ("profile", "recipe").
        limit: the largest accepted size in bytes (default 1 MiB).

    Returns:
        The parsed document (None for an empty file).

    Raises:
        ConfigError: unreadable, not a regular file, too large, not UTF-8, not valid YAML, python
            tags, anchors/aliases, duplicate keys or too deep; naming the file and the line.
    """
    raw = read_bounded(path, limit=limit, what=what)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}, line {line}: {what} is not UTF-8 text") from None
    try:
        return yaml.load(text, Loader=StrictLoader)  # noqa: S506 - StrictLoader is a SafeLoader
    except _Refused as exc:
        raise ConfigError(f"{path}{_where(exc)}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}{_where(exc)}: not valid YAML (only plain YAML is accepted): {problem}") from None
    except RecursionError:
        raise ConfigError(f"{path}: {what} is nested too deeply") from None
