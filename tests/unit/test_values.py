"""`core.values.frozen`: every value type is declared with it, so it must keep both
promises of the `@dataclass(frozen=True, slots=True)` it stands for."""

from __future__ import annotations

import dataclasses

import pytest

from strata_server.core.values import frozen


@frozen
class _Point:
    """A value with a default, as most domain values have."""

    x: int
    y: int = 0


def test_a_value_cannot_change_after_it_is_made() -> None:
    point = _Point(1, 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        point.x = 3  # type: ignore[misc]
    assert dataclasses.replace(point, y=5) == _Point(1, 5)


def test_a_value_has_slots_and_no_instance_dict() -> None:
    point = _Point(1)
    assert _Point.__slots__ == ("x", "y")
    assert not hasattr(point, "__dict__")


def test_equal_values_are_one_key() -> None:
    assert _Point(1, 2) == _Point(1, 2)
    assert len({_Point(1, 2), _Point(1, 2), _Point(2, 1)}) == 2
