"""Input bounds for schemas: PostgreSQL column ranges, free-form JSON size; a breach is a 422."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Path
from pydantic import BeforeValidator, JsonValue

#: Largest value of a PostgreSQL `integer` column.
PG_INT_MAX = 2**31 - 1
#: Largest value of a PostgreSQL `bigint` column (ids, point amounts).
PG_BIGINT_MAX = 2**63 - 1

#: The id of a row (a bigint identity) in a path: beyond bigint it is a 422, not a database error.
RowId = Annotated[int, Path(ge=1, le=PG_BIGINT_MAX, description="Id (a positive 64-bit integer).")]


@dataclass(frozen=True)
class JsonBounds:
    """How deep, how wide and how large a free-form JSON value may be."""

    max_depth: int
    max_keys: int
    max_bytes: int


def _measure(value: object, bounds: JsonBounds) -> None:
    """Walk `value` without recursion; ValueError at the first bound it breaks."""
    stack: list[tuple[object, int]] = [(value, 1)]
    keys = 0
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list) and depth > bounds.max_depth:
            raise ValueError(f"nested deeper than {bounds.max_depth} levels")
        if isinstance(node, dict):
            keys += len(node)
            if keys > bounds.max_keys:
                raise ValueError(f"more than {bounds.max_keys} keys in all")
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)


def _bounded(bounds: JsonBounds) -> Callable[[object], object]:
    def check(value: object) -> object:
        _measure(value, bounds)
        try:
            size = len(json.dumps(value, ensure_ascii=False, default=str).encode())
        except (TypeError, ValueError, RecursionError) as exc:
            raise ValueError(f"not a JSON value: {exc}") from exc
        if size > bounds.max_bytes:
            raise ValueError(f"larger than {bounds.max_bytes} bytes as JSON ({size})")
        return value

    return check


def json_bounds(*, max_depth: int, max_keys: int, max_bytes: int) -> BeforeValidator:
    """A validator bounding the depth, total key count and size of a free-form JSON value.

    It runs before pydantic walks the value: deep nesting would otherwise be stored and then
    break every response that serialises it. A breach is a 422 naming the field.
    """
    return BeforeValidator(_bounded(JsonBounds(max_depth, max_keys, max_bytes)))


#: Event properties and other small free-form objects: 8 levels, 200 keys, 16 KiB.
JsonObject = Annotated[
    dict[str, JsonValue], json_bounds(max_depth=8, max_keys=200, max_bytes=16_384)
]
#: A device configuration document: 16 levels, 10 000 keys, 256 KiB.
ConfigDocument = Annotated[
    dict[str, Any], json_bounds(max_depth=16, max_keys=10_000, max_bytes=262_144)
]
