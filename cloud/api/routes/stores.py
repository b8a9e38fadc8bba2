"""Stores and their devices: registration (admin) and listing (viewers of the store)."""

from __future__ import annotations

from fastapi import APIRouter, status

from cloud.api.deps import AdminDep, ConnDep, ViewerDep
from cloud.api.schemas.footfall_fleet import (
    DeviceCreate,
    DeviceCredential,
    DevicePublic,
    StoreCreate,
    StoreId,
    StorePublic,
)
from cloud.core.errors import NotFoundError
from cloud.core.security import Role
from cloud.db.repositories import devices as repo

router = APIRouter(prefix="/v1/stores", tags=["stores"])


@router.post("", status_code=status.HTTP_201_CREATED, summary="Register a store")
def create_store(body: StoreCreate, conn: ConnDep, _admin: AdminDep) -> StorePublic:
    """Register a store (admin only)."""
    repo.create_store(conn, store_id=body.id, name=body.name, timezone=body.timezone)
    return StorePublic(id=body.id, name=body.name, timezone=body.timezone)


@router.get("", summary="Stores the caller may see")
def list_stores(conn: ConnDep, principal: ViewerDep) -> list[StorePublic]:
    """All stores for headquarters; a store manager's own stores."""
    only = None if principal.role is not Role.STORE_MANAGER else principal.store_ids
    return [StorePublic(id=i, name=n, timezone=t) for i, n, t in repo.list_stores(conn, only)]


@router.get("/{store_id}", summary="One store")
def get_store(store_id: StoreId, conn: ConnDep, principal: ViewerDep) -> StorePublic:
    """A store the caller may see."""
    principal.require_store(store_id)
    row = repo.get_store(conn, store_id)
    if row is None:
        raise NotFoundError(f"store '{store_id}' does not exist")
    return StorePublic(id=row[0], name=row[1], timezone=row[2])


@router.post(
    "/{store_id}/devices",
    status_code=status.HTTP_201_CREATED,
    summary="Register a device and get its credential (shown once)",
)
def create_device(
    store_id: StoreId, body: DeviceCreate, conn: ConnDep, _admin: AdminDep
) -> DeviceCredential:
    """Register a device of a store (admin only); the secret is returned once."""
    credential = repo.create_device(conn, store_id=store_id, device_id=body.id, name=body.name)
    device = DevicePublic(
        id=body.id, store_id=store_id, name=body.name, online=False, last_seen_at=None,
        software_version=None,
    )  # fmt: skip
    secret = credential.rpartition(".")[2]
    return DeviceCredential(
        device=device, credential=credential, mqtt_username=body.id, mqtt_password=secret
    )


@router.get("/{store_id}/devices", summary="Devices of a store and their presence")
def list_devices(store_id: StoreId, conn: ConnDep, principal: ViewerDep) -> list[DevicePublic]:
    """The store's devices, online or not."""
    principal.require_store(store_id)
    return [
        DevicePublic(id=d.id, store_id=d.store_id, name=d.name, online=d.online,
                     last_seen_at=d.last_seen_at, software_version=d.software_version)
        for d in repo.list_devices(conn, store_id)
    ]  # fmt: skip
