"""Remote configuration of devices: publish (admin) and read the latest with its verdict."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Header, Response, status

from cloud.api.deps import AdminDep, ConnDep, ViewerDep
from cloud.api.schemas.footfall_fleet import DeviceConfigCreate, DeviceConfigPublic, DeviceId
from cloud.core.errors import InvalidInputError, NotFoundError
from cloud.db.repositories import devices_config as repo

router = APIRouter(prefix="/v1/devices", tags=["devices"])
MAX_CONFIG_BYTES = 256 * 1024  # what the edge agent accepts


def _public(row: repo.ConfigRow) -> DeviceConfigPublic:
    return DeviceConfigPublic(
        device_id=row.device_id, version=row.version, sha256=row.sha256,
        created_at=row.created_at, status=row.status, status_at=row.status_at,
        config=json.loads(row.config_json),
    )  # fmt: skip


@router.post(
    "/{device_id}/config",
    status_code=status.HTTP_201_CREATED,
    summary="Publish a new configuration version to a device (served over gRPC)",
    responses={
        200: {"model": DeviceConfigPublic, "description": "A retry: the version its key made."}
    },
)
def publish_config(
    device_id: DeviceId,
    body: DeviceConfigCreate,
    conn: ConnDep,
    _admin: AdminDep,
    response: Response,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=200,
            description="Makes a retried publish return the version it created (200).",
        ),
    ] = None,
) -> DeviceConfigPublic:
    """Store the next version; devices (gRPC watch, retained MQTT) receive it at once."""
    if len(json.dumps(body.config)) > MAX_CONFIG_BYTES:
        raise InvalidInputError(f"the config document exceeds {MAX_CONFIG_BYTES} bytes")
    if repo.device_store(conn, device_id) is None:
        raise NotFoundError(f"device '{device_id}' is not registered")
    row, created = repo.publish_config(
        conn, device_id=device_id, document=body.config, idempotency_key=idempotency_key
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return _public(row)


@router.get("/{device_id}/config", summary="The latest configuration of a device")
def get_config(device_id: DeviceId, conn: ConnDep, principal: ViewerDep) -> DeviceConfigPublic:
    """The newest version and the device's verdict on it."""
    store = repo.device_store(conn, device_id)
    if store is None:
        raise NotFoundError(f"device '{device_id}' is not registered")
    principal.require_store(store)
    row = repo.latest_config(conn, device_id)
    if row is None:
        raise NotFoundError(f"no configuration was published for device '{device_id}'")
    return _public(row)
