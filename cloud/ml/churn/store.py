"""Persistence of the churn model in PostgreSQL, and a per-process cache that follows new versions.

The model (river pipeline, metrics, drift detector, clock) is pickled; pickles only ever come from
this project's own `ml_models` table, written by `save_model`. Every API and worker process keeps
a `ModelCache`; a cheap `SELECT version` tells it when another process has saved a newer version.
"""

from __future__ import annotations

import pickle
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg

from cloud.db.repositories import ml_models as repo
from cloud.ml.churn.model import ChurnModel
from cloud.ml.errors import ModelNotFoundError, ModelVersionConflictError

Conn = psycopg.Connection[Any]
CHURN_MODEL = "churn"
CHURN_KIND = "churn-river"


@dataclass
class LoadedModel:
    """A model with the version and watermarks it was loaded at."""

    model: ChurnModel
    version: int | None
    watermarks: dict[str, int] = field(default_factory=dict)


def _dumps(model: ChurnModel) -> bytes:
    return pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)


def _loads(data: bytes) -> ChurnModel:
    model = pickle.loads(data)  # noqa: S301 - our own table, written only by save_model
    if not isinstance(model, ChurnModel):
        raise ModelNotFoundError("stored churn state is not a ChurnModel; reset the model")
    return model


def load_model(
    conn: Conn, name: str = CHURN_MODEL, *, create: ChurnModel | None = None
) -> LoadedModel:
    """The stored model, or `create` (unsaved, version None) when there is none yet."""
    row = repo.load(conn, name)
    if row is None:
        if create is None:
            raise ModelNotFoundError(f"model '{name}' has not been trained yet")
        return LoadedModel(create, None, {})
    return LoadedModel(_loads(row.state), row.version, dict(row.watermarks))


def save_model(conn: Conn, loaded: LoadedModel, name: str = CHURN_MODEL) -> int:
    """Save as the next version; ModelVersionConflictError if someone saved since we loaded."""
    model = loaded.model
    clock = datetime.fromtimestamp(model.clock, UTC) if model.clock else None
    version = repo.save(
        conn,
        name=name,
        kind=CHURN_KIND,
        expected_version=loaded.version,
        state=_dumps(model),
        samples_seen=model.samples_seen,
        metrics=model.metrics(),
        watermarks=loaded.watermarks,
        clock=clock,
    )
    if version is None:
        raise ModelVersionConflictError(
            f"model '{name}' moved past version {loaded.version} while this process worked; "
            "the work was rolled back and will be redone from the new version"
        )
    loaded.version = version
    return version


class ModelCache:
    """Keeps the latest version of a model in memory, reloading only when the version changes."""

    def __init__(self, name: str = CHURN_MODEL) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._loaded: LoadedModel | None = None

    def get(self, conn: Conn) -> LoadedModel:
        """The current model; ModelNotFoundError if none was saved yet."""
        version = repo.current_version(conn, self.name)
        if version is None:
            raise ModelNotFoundError(f"model '{self.name}' has not been trained yet")
        with self._lock:
            if self._loaded is None or self._loaded.version != version:
                self._loaded = load_model(conn, self.name)
            return self._loaded
