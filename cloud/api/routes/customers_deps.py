"""Dependencies shared by the CRM routers: CRM configuration and the Idempotency-Key header."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header

from cloud.api.deps import PrincipalDep, SettingsDep
from cloud.core.errors import PermissionDeniedError
from cloud.core.security import Principal
from cloud.crm.config import crm_config
from cloud.crm.identity.rules import IdentityRules
from cloud.crm.loyalty.goodwill import GoodwillPolicy
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


def require_pii_export(settings: SettingsDep, principal: PrincipalDep) -> Principal:
    """Admit only callers whose role holds the `pii_export` permission (settings)."""
    if principal.role.value not in settings.crm_pii_export_roles:
        raise PermissionDeniedError(
            f"exporting customers' contact data needs the pii_export permission, which the"
            f" role {principal.role.value} does not hold (MALLPULSE_CRM_PII_EXPORT_ROLES)"
        )
    return principal


#: Callers allowed to export personal data in bulk.
PiiExportDep = Annotated[Principal, Depends(require_pii_export)]


def get_goodwill_policy(settings: SettingsDep) -> GoodwillPolicy:
    """Goodwill limits per role and the approval threshold, from the settings."""
    return GoodwillPolicy(
        max_points={
            "admin": settings.crm_goodwill_max_points_admin,
            "hq_marketer": settings.crm_goodwill_max_points_hq_marketer,
        },
        approval_threshold=settings.crm_goodwill_approval_threshold,
    )


GoodwillPolicyDep = Annotated[GoodwillPolicy, Depends(get_goodwill_policy)]
