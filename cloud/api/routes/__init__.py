"""Routers, one module per resource; ROUTERS is the list the app factory mounts."""

from __future__ import annotations

from fastapi import APIRouter

from cloud.api.routes import system

ROUTERS: list[APIRouter] = [system.router]
