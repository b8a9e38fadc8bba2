"""Shared base for every config model: unknown keys are errors, instances are immutable."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

Identifier = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="Identifier: letters, digits, '_', '.', '-'; no '/', '+' or '#' (MQTT topics).",
    ),
]
IDENTIFIER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class StrictModel(BaseModel):
    """Base for config models: extra keys are rejected and instances are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)
