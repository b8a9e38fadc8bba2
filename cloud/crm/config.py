"""The CRM's configuration objects, built from Settings by the composition root."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from pydantic import ValidationError

from cloud.core.errors import SettingsError
from cloud.core.settings import Settings
from cloud.crm.identity.rules import IdentityRules
from cloud.crm.loyalty.program import LoyaltyProgram


@lru_cache(maxsize=8)
def _load(region: str, program_file: str | None) -> tuple[IdentityRules, LoyaltyProgram]:
    rules = IdentityRules(default_phone_region=region.upper())
    if program_file is None:
        return rules, LoyaltyProgram()
    try:
        data = json.loads(Path(program_file).read_text(encoding="utf-8"))
        return rules, LoyaltyProgram.model_validate(data)
    except (OSError, ValueError, ValidationError) as exc:
        raise SettingsError(
            f"MALLPULSE_CRM_LOYALTY_PROGRAM_FILE ({program_file}) is not a valid programme: {exc}"
        ) from exc


def crm_config(settings: Settings) -> tuple[IdentityRules, LoyaltyProgram]:
    """Identity rules and the loyalty programme for these settings (cached)."""
    return _load(settings.crm_phone_region, settings.crm_loyalty_program_file)
