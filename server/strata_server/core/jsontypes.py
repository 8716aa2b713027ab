"""The JSON type alias, in a module of its own so every domain module can use it
without importing another (core.models and core.queue refer to each other's types)."""

from typing import Any

JSON = dict[str, Any]
"""A JSON object as Python values: what a record's data or a job's payload is."""
