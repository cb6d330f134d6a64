"""The shared argument checks: each names the argument, the rule and the value."""

from __future__ import annotations

import pytest

from ganlib._validation import check_in_range


@pytest.mark.parametrize(
    ("value", "ends", "expected"),
    [
        (0, {}, 0.0),
        (1, {}, 1.0),
        (0.5, {"low_open": True, "high_open": True}, 0.5),
    ],
)
def test_check_in_range_returns_values_inside_as_floats(value, ends, expected):
    result = check_in_range("x", value, 0.0, 1.0, **ends)
    assert result == expected and isinstance(result, float)


@pytest.mark.parametrize(
    ("value", "ends", "message"),
    [
        (1.0, {"high_open": True}, r"`x` must be in \[0, 1\), got 1.0"),
        (0.0, {"low_open": True}, r"`x` must be in \(0, 1\], got 0.0"),
        (-0.5, {}, r"`x` must be in \[0, 1\], got -0.5"),
        (2, {}, r"`x` must be in \[0, 1\], got 2.0"),
    ],
)
def test_check_in_range_names_the_interval_and_the_value(value, ends, message):
    with pytest.raises(ValueError, match=message):
        check_in_range("x", value, 0.0, 1.0, **ends)


@pytest.mark.parametrize("value", [True, "0.5", float("nan"), float("inf"), None])
def test_check_in_range_refuses_what_is_no_finite_number(value):
    with pytest.raises(TypeError, match="`x` must be a finite number, got"):
        check_in_range("x", value, 0.0, 1.0)
