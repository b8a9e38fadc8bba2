"""The CRM routers, mounted by the app factory through ROUTERS."""

from __future__ import annotations

from fastapi import APIRouter

from cloud.api.routes import (
    consents,
    customers,
    customers_import,
    identities,
    lifecycle,
    loyalty,
    rewards,
    touchpoints,
    transactions,
)

CRM_ROUTERS: list[APIRouter] = [
    customers_import.router,  # before customers: /import and /export are not profile ids
    customers.router,
    identities.router,
    consents.router,
    touchpoints.router,
    transactions.router,
    lifecycle.router,
    loyalty.router,
    rewards.router,
]
