"""Configs as YAML-like `key: value` text for people (console lines and report.md), not Python dicts.

Example:
    >>> config_inline({"sparsity": 0.8, "skip_layers": ["conv2d"], "schedule": None})
    'sparsity: 0.8, skip_layers: [conv2d], schedule: null'
    >>> print("\\n".join(config_lines({"sparsity": 0.8, "block": {"m": 2, "n": 4}})))
    sparsity: 0.8
    block:
      m: 2
      n: 4
"""
from __future__ import annotations


def scalar(value) -> str:
    """One value as YAML writes it in flow style: null, true/false, numbers, [a, b], {k: v}, plain strings."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(scalar(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + config_inline(value) + "}" if value else "{}"
    return str(value)


def config_inline(config: dict) -> str:
    """A config on one line: `key: value, key: value` (nested mappings in braces).

    Args:
        config: a JSON-ready mapping (e.g. a stage config's `model_dump(mode="json")`).

    Returns:
        The text; "{}" for an empty mapping.
    """
    return ", ".join(f"{k}: {scalar(v)}" for k, v in config.items()) if config else "{}"


def config_lines(config: dict, indent: str = "") -> list[str]:
    """A config as block-style lines, nested mappings indented by two spaces.

    Args:
        config: a JSON-ready mapping.
        indent: the prefix of the top-level lines.

    Returns:
        One line per scalar or list value, one header line per non-empty nested mapping.
    """
    lines = []
    for key, value in config.items():
        if isinstance(value, dict) and value:
            lines.append(f"{indent}{key}:")
            lines += config_lines(value, indent + "  ")
        else:
            lines.append(f"{indent}{key}: {scalar(value)}")
    return lines
