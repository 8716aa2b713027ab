"""How the server caches: the in-process cache (without Redis), CacheService's
limits, and how long record reads may be served from the cache.

A group of `config.Settings` (see the package docstring).
"""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

from strata_server.core.validation import COLLECTION_RE
from strata_server.settings.limit_settings import MIB


class CacheSettings(BaseModel):
    """The cache settings."""

    local_cache: bool = Field(
        True,
        description="without Redis, keep an in-process cache when one process serves a SQLite "
        "file; --workers turns it off for its workers (they could not see each other's writes)",
    )
    cache_memory_bytes: int = Field(
        64 * MIB, ge=MIB, description="in-process cache: most bytes of values it holds"
    )
    cache_max_value_bytes: int = Field(
        MIB, ge=1, le=512 * MIB, description="CacheService: largest value a Set may store"
    )
    cache_default_ttl_seconds: float = Field(
        300.0, gt=0, le=30 * 24 * 3600, description="CacheService: TTL of a Set without one"
    )
    record_cache_ttl_seconds: float = Field(
        300.0,
        ge=0,
        description="how long GetRecord/BatchGetRecords may serve a record from "
        "the cache; 0 turns the record cache off",
    )
    record_cache_collection_ttls: dict[str, float] = Field(
        default_factory=dict,
        description='per-collection record cache TTLs in seconds, e.g. {"sessions": 30, '
        '"ledger": 0} (0: that collection is never cached); others use record_cache_ttl_seconds',
    )

    @field_validator("record_cache_collection_ttls")
    @classmethod
    def _check_collection_ttls(cls, value: dict[str, float]) -> dict[str, float]:
        for name, ttl in value.items():
            if not COLLECTION_RE.fullmatch(name):
                raise ValueError(f"{name!r} is not a collection name")
            if not 0 <= ttl < float("inf"):
                raise ValueError(f"the TTL of {name!r} must be 0 (off) or a positive number")
        return value
