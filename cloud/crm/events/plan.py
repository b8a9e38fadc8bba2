"""Tracking plans: a JSON schema per (type, event) of a source, checked with `jsonschema`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from cloud.crm.errors import CrmInvalidInputError

#: The plan key of identify calls (they have no event name).
IDENTIFY_KEY = "*"


def check_schema(schema: Mapping[str, Any]) -> None:
    """Refuse a schema that is not valid JSON Schema (draft 2020-12), naming the problem."""
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise CrmInvalidInputError(f"not a valid JSON schema: {exc.message}") from exc


@dataclass(frozen=True)
class PlanViolation:
    """One way a call breaks its source's tracking plan."""

    kind: str  # "plan" (schema) or "unplanned" (no schema for a planned type)
    field: str
    message: str


class TrackingPlan:
    """A source's compiled plan; `check` lists what one call breaks."""

    def __init__(self, schemas: Mapping[tuple[str, str], Mapping[str, Any]]) -> None:
        self._validators = {key: Draft202012Validator(s) for key, s in schemas.items()}
        self._planned_types = {type_ for type_, _ in schemas}

    def __bool__(self) -> bool:
        return bool(self._validators)

    def check(
        self, type_: str, event: str | None, payload: Mapping[str, Any]
    ) -> list[PlanViolation]:
        """Violations of one call (`payload`: its properties, or traits for identify)."""
        if type_ not in self._planned_types:
            return []  # a type the plan does not cover is free
        key = (type_, IDENTIFY_KEY if type_ == "identify" else (event or ""))
        validator = self._validators.get(key)
        if validator is None:
            return [PlanViolation("unplanned", "event", f"{key[1]!r} is not in the plan")]
        field = "traits" if type_ == "identify" else "properties"
        return [
            PlanViolation(
                "plan",
                ".".join([field, *(str(p) for p in err.absolute_path)]),
                err.message[:300],
            )
            for err in validator.iter_errors(dict(payload))
        ]
