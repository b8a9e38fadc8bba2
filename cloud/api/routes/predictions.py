"""Per-customer predictions: churn probability, CLV, health score, reasons, next best action."""

from __future__ import annotations

from fastapi import APIRouter

from cloud.api.deps import ConnDep, MarketerDep, SettingsDep
from cloud.api.schemas import ml as s
from cloud.ml import service

router = APIRouter(prefix="/v1/predictions", tags=["predictions"])


@router.get(
    "/customers/{customer_id}",
    summary="Churn probability, CLV, health score and next best action of a customer",
)
def customer_prediction(
    customer_id: str, conn: ConnDep, settings: SettingsDep, principal: MarketerDep
) -> s.CustomerPredictionPublic:
    """Scored now from the customer's state, the current churn model and the CLV fits."""
    row = service.customer_prediction(conn, customer_id=customer_id, settings=settings)
    return s.CustomerPredictionPublic.model_validate(row)
