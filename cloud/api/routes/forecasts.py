"""Store footfall forecasts and anomalies from the online per-store models."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from cloud.api.deps import ConnDep, ViewerDep
from cloud.api.params import IsoDatetime
from cloud.api.schemas import ml as s
from cloud.ml.footfall import service

router = APIRouter(prefix="/v1/stores/{store_id}/footfall", tags=["forecasts"])


@router.get("/forecast", summary="Hourly footfall forecast for the next hours")
def forecast(
    store_id: str,
    conn: ConnDep,
    principal: ViewerDep,
    horizon: Annotated[int, Query(ge=1, le=168, description="Hours ahead.")] = 24,
) -> s.FootfallForecastPublic:
    """Holt-Winters forecast learnt online from the store's hourly people-in counts."""
    principal.require_store(store_id)
    return s.FootfallForecastPublic.model_validate(
        service.forecast(conn, store_id=store_id, horizon=horizon)
    )


@router.get("/anomalies", summary="Hours whose footfall the model did not expect")
def anomalies(
    store_id: str,
    conn: ConnDep,
    principal: ViewerDep,
    since: Annotated[IsoDatetime | None, Query(description="Only hours from this time.")] = None,
    all_hours: Annotated[bool, Query(description="Every scored hour, not only anomalies.")] = False,
    limit: Annotated[int, Query(ge=1, le=1000, description="Most hours returned.")] = 100,
) -> s.AnomalyList:
    """Online anomaly scores (river PredictiveAnomalyDetection), newest first."""
    principal.require_store(store_id)
    return s.AnomalyList.model_validate(
        service.anomalies(
            conn, store_id=store_id, anomalies_only=not all_hours, since=since, limit=limit
        )
    )
