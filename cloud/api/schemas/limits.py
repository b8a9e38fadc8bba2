"""Bounds of PostgreSQL column types, for the input schemas: out-of-range input is a 422."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

#: Largest value of a PostgreSQL `integer` column.
PG_INT_MAX = 2**31 - 1
#: Largest value of a PostgreSQL `bigint` column (ids, point amounts).
PG_BIGINT_MAX = 2**63 - 1

#: The id of a row (a bigint identity) in a path: beyond bigint it is a 422, not a database error.
RowId = Annotated[int, Path(ge=1, le=PG_BIGINT_MAX, description="Id (a positive 64-bit integer).")]
