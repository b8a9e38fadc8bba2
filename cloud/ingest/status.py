"""Device presence from retained `status` messages (the MQTT last will says offline)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from google.protobuf.message import DecodeError
from psycopg_pool import ConnectionPool

from cloud.db.repositories import deadletter, telemetry
from cloud.ingest.validate import Incoming, Limits, Reason, status_time_problem
from protos.mallpulse.v1 import telemetry_pb2

log = logging.getLogger(__name__)


def _verdict(
    item: Incoming, known: dict[str, str], limits: Limits, now: datetime
) -> telemetry_pb2.DeviceStatus | str:
    msg = telemetry_pb2.DeviceStatus()
    try:
        msg.ParseFromString(item.payload)
    except DecodeError as exc:
        return f"{Reason.BAD_PROTOBUF.value}: not a mallpulse.v1.DeviceStatus: {exc}"
    if msg.device_id != item.device_id or msg.store_id != item.store_id:
        claimed = f"{msg.store_id}/{msg.device_id}"
        return f"{Reason.DEVICE_MISMATCH.value}: status of {claimed} on {item.topic}"
    if len(msg.software_version) > 128 or not msg.software_version.isprintable():
        return f"{Reason.BAD_PAYLOAD.value}: software_version must be printable, <= 128 chars"
    if msg.HasField("at"):
        problem = status_time_problem(msg.at.seconds, msg.at.nanos, limits, now)
        if problem is not None:
            return f"{problem.code.value}: {problem.reason}"
    store = known.get(msg.device_id)
    if store is None:
        return f"{Reason.UNKNOWN_DEVICE.value}: device {msg.device_id!r} is not registered"
    if store != msg.store_id:
        return f"{Reason.STORE_MISMATCH.value}: device {msg.device_id!r} belongs to {store!r}"
    return msg


def apply_statuses(
    pool: ConnectionPool,
    items: list[Incoming],
    *,
    limits: Limits | None = None,
    now: datetime | None = None,
) -> int:
    """Apply presence messages in one transaction; bad ones are dead-lettered. Returns how many
    changed a device. `limits` bounds the future skew of `at` (default: Limits())."""
    if not items:
        return 0
    limits = limits or Limits()
    now = now or datetime.now(UTC)
    changed = 0
    with pool.connection() as conn, conn.transaction():
        known = telemetry.device_stores(conn, (i.device_id or "" for i in items))
        dead = []
        for item in items:
            verdict = _verdict(item, known, limits, now)
            if isinstance(verdict, str):
                code, _, reason = verdict.partition(": ")
                dead.append((item.transport, item.topic, item.device_id, item.store_id, None,
                             code, reason, item.payload))  # fmt: skip
                continue
            at = verdict.at.ToDatetime(tzinfo=UTC) if verdict.HasField("at") else None
            if at is None:
                code, reason = Reason.BAD_PAYLOAD.value, "status without `at`"
                dead.append((item.transport, item.topic, item.device_id, item.store_id, None,
                             code, reason, item.payload))  # fmt: skip
                continue
            changed += telemetry.apply_status(
                conn, device_id=verdict.device_id, online=verdict.online, at=at,
                software_version=verdict.software_version,
            )  # fmt: skip
        deadletter.add_dead_letters(conn, dead)
    log.info("device status applied", extra={"messages": len(items), "changed": changed})
    return changed
