"""One way to turn a pydantic ValidationError into a message that names where and what.

Every strict config (profiles and their sections, recipes, stage configs, agent answers)
reports its errors through `validation_lines`, so they all read the same way:
`<origin>: <field.path>: <what is wrong>`, with "unknown key" for a misspelled key.

Example:
    >>> from pydantic import BaseModel, ConfigDict, ValidationError
    >>> class Cfg(BaseModel):
    ...     model_config = ConfigDict(extra="forbid")
    ...     sparsity: float
    >>> try:
    ...     Cfg.model_validate({"sparsty": 0.5})
    ... except ValidationError as exc:
    ...     print(validation_lines(exc, "recipe.yaml")[0])
    recipe.yaml: sparsity: Field required
"""
from __future__ import annotations

from pydantic import ValidationError


def error_message(error: dict) -> str:
    """What is wrong, for one entry of `ValidationError.errors()`."""
    if error["type"] == "extra_forbidden":
        return "unknown key"
    return error["msg"].removeprefix("Value error, ")


def error_path(error: dict, prefix: str = "") -> str:
    """The dotted field path of one error entry, under `prefix` ("(top level)" when empty)."""
    return ".".join(str(p) for p in (prefix, *error["loc"]) if p != "") or "(top level)"


def validation_lines(exc: ValidationError, origin: str, prefix: str = "") -> list[str]:
    """One line per error: `origin: field.path: message`.

    Args:
        exc: the pydantic error.
        origin: where the data came from (a file, "--limit", "stage 'prune'").
        prefix: a path to put before each field path (e.g. "limits").

    Returns:
        The lines, in pydantic's order.
    """
    return [f"{origin}: {error_path(e, prefix)}: {error_message(e)}" for e in exc.errors()]
