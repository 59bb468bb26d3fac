"""The comments of a YAML file, by key: where each figure of a device profile comes from.

PyYAML drops comments, so a small line-based reader maps every `key:` line to the comment lines
just above it and its trailing `# comment`, by dotted path ("limits.ram"). It reads block
mappings as the shipped profiles write them; flow mappings and multi-line values are not
looked into (their keys simply have no comments). The comment lines before the first key are
the file's header.

Example:
    >>> from exporter.profile import PROFILE_DIR
    >>> notes = read_comments(PROFILE_DIR / "android-arm64-midrange.yaml")
    >>> notes.fields["threads"]
    ['LiteRT benchmarks and the anchors above are single-thread figures']
    >>> notes.fields["limits.latency"]
    ['One frame of a 30 fps camera pipeline (1000 ms / 30).']
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

_KEY = re.compile(r"^(?P<indent>[ ]*)(?P<key>[A-Za-z_][\w.-]*)\s*:(?P<rest>.*)$")


@dataclass
class YamlComments:
    """A file's header comment and, per dotted key path, its comment lines (above first, then trailing).

    Attributes:
        header: the comment lines before the first key.
        fields: dotted key path -> comment lines; every key of the file is present (maybe with []).
    """

    header: list[str] = field(default_factory=list)
    fields: dict[str, list[str]] = field(default_factory=dict)


def _trailing(rest: str) -> str:
    """The `# comment` at the end of a value, outside quotes ("" if none)."""
    quote = None
    for i, ch in enumerate(rest):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or rest[i - 1] in " \t"):
            return rest[i + 1:].strip()
    return ""


def parse_comments(text: str) -> YamlComments:
    """Map each key of a block-style YAML text to its comments.

    Args:
        text: the YAML text.

    Returns:
        YamlComments: the header and the comments by dotted key path.
    """
    out = YamlComments()
    pending: list[str] = []
    stack: list[tuple[int, str]] = []          # (indent, key) of the enclosing mappings
    seen_key = False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            pending.append(stripped.lstrip("#").strip())
            continue
        match = _KEY.match(line)
        if not match:
            if not stripped and not seen_key and pending:     # a blank line ends the header
                out.header += pending
                pending = []
            continue
        indent = len(match["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = ".".join([k for _, k in stack] + [match["key"]])
        if not seen_key and not stack:
            out.header += pending
            pending = []
        seen_key = True
        inline = _trailing(match["rest"])
        out.fields[path] = [c for c in pending if c] + ([inline] if inline else [])
        pending = []
        stack.append((indent, match["key"]))
    return out


def read_comments(path: Path) -> YamlComments:
    """`parse_comments` of a file (UTF-8).

    Args:
        path: the YAML file.

    Returns:
        YamlComments.
    """
    return parse_comments(Path(path).read_text(encoding="utf-8"))
