"""A run plan is checked where it is made, so the API refuses what the CLI refuses."""
from __future__ import annotations

import pytest

from exporter.errors import UsageError
from exporter.hil.transports.base import RunPlan


@pytest.mark.parametrize("kwargs, name", [({"runs": 0}, "runs"), ({"warmup": -1}, "warmup"),
                                          ({"runs": 1.5}, "runs"), ({"eval_samples": True}, "eval_samples"),
                                          ({"timeout": 0}, "timeout"), ({"timeout": float("inf")}, "timeout")])
def test_impossible_plans_are_refused(kwargs, name):
    with pytest.raises(UsageError, match=f"RunPlan {name}="):
        RunPlan(**kwargs)


def test_the_cli_defaults_make_a_valid_plan():
    assert RunPlan(warmup=10, runs=50, eval_samples=0, timeout=300).runs == 50
