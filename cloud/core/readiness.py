"""Readiness checks that test a process's dependencies; liveness stays a cheap 'I answer'."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

from psycopg_pool import ConnectionPool

from cloud.core.errors import CloudError

Check = Callable[[], None]  # raises when the dependency does not answer
_TIMEOUT_S = 2.0


class NotReadyError(CloudError):
    """A dependency the process needs does not answer."""

    status = 503
    slug = "not-ready"
    title = "Not ready"


def postgres(pool: ConnectionPool) -> Check:
    """A pooled connection runs a query."""

    def _check() -> None:
        with pool.connection(timeout=_TIMEOUT_S) as conn:
            conn.execute("SELECT 1")

    return _check


def redis(url: str) -> Check:
    """Redis answers PING."""

    def _check() -> None:
        import redis as redis_lib  # only processes that check Redis load the client

        client = redis_lib.Redis.from_url(
            url, socket_timeout=_TIMEOUT_S, socket_connect_timeout=_TIMEOUT_S
        )
        try:
            client.ping()
        finally:
            client.close()

    return _check


def mqtt(connected: threading.Event) -> Check:
    """The MQTT client holds a broker connection."""

    def _check() -> None:
        if not connected.is_set():
            raise ConnectionError("not connected to the MQTT broker")

    return _check


def run_checks(checks: Mapping[str, Check]) -> dict[str, str]:
    """Each check's result: "ok" or why it failed."""
    results: dict[str, str] = {}
    for name, check in checks.items():
        try:
            check()
            results[name] = "ok"
        except Exception as exc:  # any failure means "not ready"; the result says why
            results[name] = f"{type(exc).__name__}: {exc}"[:300]
    return results


def require_ready(checks: Mapping[str, Check]) -> dict[str, str]:
    """The results when every check passed; NotReadyError naming the failures otherwise."""
    results = run_checks(checks)
    failed = {k: v for k, v in results.items() if v != "ok"}
    if failed:
        raise NotReadyError("; ".join(f"{k}: {v}" for k, v in failed.items()))
    return results
