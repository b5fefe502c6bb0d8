"""The exact text of schedule errors, and from_config on a config without arguments."""

from __future__ import annotations

import re

import pytest

from nabla.optim.schedules import OneCycle, from_config


def test_one_cycle_warmup_error_reads_in_full():
    expected = (
        "OneCycle: need 0 < pct_start < 1 and pct_start * total_steps > 1 (a warmup of "
        "at least one step), got pct_start=0.05, total_steps=10"
    )
    with pytest.raises(ValueError, match=r"\A" + re.escape(expected) + r"\Z"):
        OneCycle(1.0, total_steps=10, pct_start=0.05)


def test_a_config_without_arguments_calls_the_class_with_none():
    """{"class_name": ...} alone is the class called with no arguments: its own error names
    the argument that has no default."""
    with pytest.raises(
        TypeError,
        match=r"missing 2 required positional arguments: 'max_value' and "
        r"'total_steps'",
    ):
        from_config({"class_name": "OneCycle"})
