"""The CRM's configuration objects, built from Settings by the composition root."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from cloud.core.errors import SettingsError
from cloud.core.settings import Settings
from cloud.crm.identity.rules import IdentityRules
from cloud.crm.loyalty.program import LoyaltyProgram


def _read(path: str | None, variable: str) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SettingsError(f"{variable} ({path}) cannot be read as JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise SettingsError(f"{variable} ({path}) must hold a JSON object")
    return data


@lru_cache(maxsize=8)
def _load(
    region: str, rules_file: str | None, program_file: str | None
) -> tuple[IdentityRules, LoyaltyProgram]:
    rules_data = {"default_phone_region": region.upper(), **_read(rules_file, _RULES_VAR)}
    try:
        rules = IdentityRules.model_validate(rules_data)
    except ValidationError as exc:
        raise SettingsError(f"{_RULES_VAR} ({rules_file}) is not valid: {exc}") from exc
    try:
        program = LoyaltyProgram.model_validate(_read(program_file, _PROGRAM_VAR))
    except ValidationError as exc:
        raise SettingsError(f"{_PROGRAM_VAR} ({program_file}) is not valid: {exc}") from exc
    return rules, program


_RULES_VAR = "MALLPULSE_CRM_IDENTITY_RULES_FILE"
_PROGRAM_VAR = "MALLPULSE_CRM_LOYALTY_PROGRAM_FILE"


def crm_config(settings: Settings) -> tuple[IdentityRules, LoyaltyProgram]:
    """Identity rules and the loyalty programme for these settings (cached)."""
    return _load(
        settings.crm_phone_region,
        settings.crm_identity_rules_file,
        settings.crm_loyalty_program_file,
    )
