"""Dependencies shared by the CRM routers: CRM configuration and the Idempotency-Key header."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header

from cloud.api.deps import SettingsDep
from cloud.crm.config import crm_config
from cloud.crm.identity.rules import IdentityRules
from cloud.crm.loyalty.program import LoyaltyProgram


def get_identity_rules(settings: SettingsDep) -> IdentityRules:
    """Identity rules from the settings."""
    return crm_config(settings)[0]


def get_program(settings: SettingsDep) -> LoyaltyProgram:
    """The loyalty programme from the settings."""
    return crm_config(settings)[1]


RulesDep = Annotated[IdentityRules, Depends(get_identity_rules)]
ProgramDep = Annotated[LoyaltyProgram, Depends(get_program)]
IdempotencyKeyDep = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        description="Unique per intended operation; a retry with the same key moves points once.",
    ),
]
