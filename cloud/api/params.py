"""Query parameter types shared by the routers, parsed strictly."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AwareDatetime, BeforeValidator


def _not_a_number(value: object) -> object:
    """Refuse what pydantic would read as a Unix timestamp (`to=0.5`, `from=1700000000`).

    The schema says `format: date-time`; a number there is a client bug (seconds or
    milliseconds?), so it is a 422 rather than a silent guess.
    """
    if isinstance(value, bool | int | float):
        raise ValueError("expected an ISO 8601 date-time such as 2026-01-31T09:00:00Z")
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return value
        raise ValueError(
            f"expected an ISO 8601 date-time such as 2026-01-31T09:00:00Z, not {value!r}"
        )
    return value


#: An ISO 8601 date-time (with or without offset); numbers are refused.
IsoDatetime = Annotated[datetime, BeforeValidator(_not_a_number)]
#: An ISO 8601 date-time with an offset; numbers are refused.
IsoAwareDatetime = Annotated[AwareDatetime, BeforeValidator(_not_a_number)]
