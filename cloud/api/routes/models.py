"""Model status: version, samples seen, progressive metrics, drift events; admin reset."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from cloud.api.deps import AdminDep, ConnDep, MarketerDep
from cloud.api.problems import problem_responses
from cloud.api.schemas import ml as s
from cloud.ml import service

router = APIRouter(prefix="/v1/models", tags=["models"])
NamePath = Annotated[str, Path(max_length=128, description="Model name, e.g. churn.")]


@router.get("", summary="Every persisted model with its headline numbers")
def list_models(conn: ConnDep, principal: MarketerDep) -> list[s.ModelSummaryPublic]:
    """Churn and per-store footfall models."""
    return [s.ModelSummaryPublic.model_validate(m) for m in service.list_models(conn)]


@router.get("/{name}", summary="Status of a model: version, metrics, drift events, versions")
def model_status(name: NamePath, conn: ConnDep, principal: MarketerDep) -> s.ModelStatusPublic:
    """What the model has learnt and how well it predicts (progressive validation)."""
    return s.ModelStatusPublic.model_validate(service.model_status(conn, name=name))


@router.post(
    "/churn/reset",
    summary="Reset the churn model (forget learnt weights; keep customers)",
    responses=problem_responses(404),
)
def reset_churn(conn: ConnDep, principal: AdminDep) -> s.ModelStatusPublic:
    """For use after a confirmed drift; learning restarts from the next labelled samples."""
    status = service.reset_churn_model(conn, actor=principal.subject)
    return s.ModelStatusPublic.model_validate(status)
