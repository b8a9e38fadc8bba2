"""Routers, one module per resource; ROUTERS is the list the app factory mounts."""

from __future__ import annotations

from fastapi import APIRouter

from cloud.api.routes import (
    chain,
    devices,
    footfall,
    footfall_dashboard,
    forecasts,
    models,
    predictions,
    risk,
    stores,
    system,
)
from cloud.api.routes.customers_routers import CRM_ROUTERS

ROUTERS: list[APIRouter] = [system.router]
ROUTERS += [stores.router, footfall.router, chain.router, footfall_dashboard.router, devices.router]
ROUTERS += CRM_ROUTERS
ROUTERS += [predictions.router, risk.router, models.router, forecasts.router]
