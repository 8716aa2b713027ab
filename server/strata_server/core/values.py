"""`frozen`: how Strata declares a value (a domain type, a command, a row, a report).

Values are passed between layers and tasks and read back by equality, so none may
change after it is made, and there are many of them on the hot paths, so none
carries a `__dict__`. Spelling that once, as one decorator, keeps every value held
to both rules instead of each declaration repeating (or forgetting) them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar, dataclass_transform

T = TypeVar("T")


@dataclass_transform(frozen_default=True)
def frozen(cls: type[T]) -> type[T]:
    """`@dataclass(frozen=True, slots=True)`: immutable, hashable, slotted."""
    return dataclass(frozen=True, slots=True)(cls)
