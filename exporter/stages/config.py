"""The base of every stage config: strict, frozen and finite.

Example:
    >>> class MyConfig(StageConfig):
    ...     strength: float = Field(1.0, gt=0, description="how hard")
    >>> MyConfig(strength=float("inf"))        # ValidationError: Input should be a finite number
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StageConfig(BaseModel):
    """Base of every stage config: strict (unknown keys are errors), frozen, and finite.

    `allow_inf_nan=False`: every float field of every stage config (plugins included) refuses
    NaN and infinities naming the field, so a resolved recipe always writes as plain JSON.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
