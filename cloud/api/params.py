"""Date and time types for query parameters and request bodies, parsed strictly."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated

from pydantic import AwareDatetime, BeforeValidator


def _not_a_number(example: str) -> Callable[[object], object]:
    """Refuse what pydantic would read as a Unix timestamp (`to=0.5`, `from=1700000000`).

    The schema says `format: date-time` (or `date`); a number there is a client bug (seconds
    or milliseconds?), so it is a 422 rather than a silent guess.
    """

    def check(value: object) -> object:
        if isinstance(value, str):
            try:
                float(value)
            except ValueError:
                return value
        elif not isinstance(value, bool | int | float):
            return value
        raise ValueError(f"expected ISO 8601 such as {example}, not a number ({value!r})")

    return check


#: An ISO 8601 date-time (with or without offset); numbers are refused.
IsoDatetime = Annotated[datetime, BeforeValidator(_not_a_number("2026-01-31T09:00:00Z"))]
#: An ISO 8601 date-time with an offset; numbers are refused.
IsoAwareDatetime = Annotated[
    AwareDatetime, BeforeValidator(_not_a_number("2026-01-31T09:00:00+01:00"))
]
#: An ISO 8601 calendar date; numbers are refused.
IsoDate = Annotated[date, BeforeValidator(_not_a_number("2026-01-31"))]
