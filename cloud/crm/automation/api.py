"""The automation API (routes are added by the feature)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["automation"])
