"""Routers, one module per resource; ROUTERS is the list the app factory mounts."""

from __future__ import annotations

from fastapi import APIRouter

from cloud.api.routes import chain, footfall, footfall_dashboard, stores, system

ROUTERS: list[APIRouter] = [system.router]
ROUTERS += [stores.router, footfall.router, chain.router, footfall_dashboard.router]
