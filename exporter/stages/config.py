"""The base of every stage config: strict, frozen and finite.

Example:
    >>> from pydantic import Field
    >>> class MyConfig(StageConfig):
    ...     strength: float = Field(1.0, gt=0, description="how hard")
    >>> MyConfig(strength=2).strength
    2.0
    >>> MyConfig(strength=float("inf"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for MyConfig
    strength
      Input should be a finite number ...
    >>> MyConfig(strenght=2)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for MyConfig
    strenght
      Extra inputs are not permitted ...
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StageConfig(BaseModel):
    """Base of every stage config: strict (unknown keys are errors), frozen, and finite.

    `allow_inf_nan=False`: every float field of every stage config (plugins included) refuses
    NaN and infinities naming the field, so a resolved recipe always writes as plain JSON.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
