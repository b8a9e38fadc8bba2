"""Rate limits on failed authentication and on expensive calls, shared across API replicas.

Counters live in Redis (every replica sees the same counts) or, for a single process such as
the demo, in memory (`MALLPULSE_RATELIMIT_STORAGE`). The `limits` library keeps them with a
sliding-window counter. A limit reached answers 429 with Retry-After and a problem body.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from limits import RateLimitItem, parse_many
from limits.errors import StorageError
from limits.storage import MemoryStorage, RedisStorage, Storage
from limits.strategies import SlidingWindowCounterRateLimiter

from cloud.api.problems import problem
from cloud.core.errors import CloudError
from cloud.core.settings import Settings

log = logging.getLogger(__name__)
Network = IPv4Network | IPv6Network

#: History routes whose cost grows with the requested range (`from`/`to` query parameters).
RANGE_ROUTES = frozenset(
    {
        "/v1/stores/{store_id}/footfall",
        "/v1/stores/{store_id}/engagement",
        "/v1/stores/{store_id}/demographics",
        "/v1/chain/footfall",
    }
)
#: Any route whose path ends so is a bulk transfer (customer import/export and the like).
BULK_SUFFIXES = ("/import", "/export")


class TooManyRequestsError(CloudError):
    """A rate limit was reached; `retry_after_s` says when to try again."""

    status = 429
    slug = "rate-limited"
    title = "Too many requests"

    def __init__(self, detail: str, *, retry_after_s: int) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s


def trusted_networks(settings: Settings) -> tuple[Network, ...]:
    """The reverse proxies named by MALLPULSE_TRUSTED_PROXIES."""
    items = (p.strip() for p in settings.trusted_proxies.split(","))
    return tuple(ip_network(p, strict=False) for p in items if p)


def _trusted(host: str, networks: Sequence[Network]) -> bool:
    try:
        addr = ip_address(host)
    except ValueError:
        return False
    return any(addr in net for net in networks)


def client_address(request: Request, networks: Sequence[Network]) -> str:
    """The caller's address: the TCP peer, or, when the peer is a trusted proxy, the nearest
    untrusted address in X-Forwarded-For (never a value a client could simply make up)."""
    peer = request.client.host if request.client else "unknown"
    if not networks or not _trusted(peer, networks):
        return peer
    hops = [h.strip() for h in ",".join(request.headers.getlist("x-forwarded-for")).split(",")]
    for hop in reversed([h for h in hops if h]):
        if not _trusted(hop, networks):
            return hop
    return peer


def _parse_when(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None  # the route itself answers 422
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def expensive_kind(request: Request, long_range_days: int) -> str | None:
    """'bulk' or 'long-range' when the matched route is expensive, else None."""
    route = request.scope.get("route")
    path = str(getattr(route, "path", ""))
    if path.endswith(BULK_SUFFIXES):
        return "bulk"
    if path in RANGE_ROUTES:
        start = _parse_when(request.query_params.get("from"))
        end = _parse_when(request.query_params.get("to")) or datetime.now(UTC)
        if start is not None and end - start > timedelta(days=long_range_days):
            return "long-range"
    return None


class RateLimiter:
    """Failed-authentication lockout and expensive-call limits over one `limits` storage."""

    def __init__(self, settings: Settings, storage: Storage) -> None:
        self.enabled = settings.ratelimit_enabled
        self.long_range_days = settings.ratelimit_long_range_days
        self.networks = trusted_networks(settings)
        self._auth_rules = parse_many(settings.ratelimit_auth_failures)
        self._expensive_rules = parse_many(settings.ratelimit_expensive)
        self._limiter = SlidingWindowCounterRateLimiter(storage)
        self._warned_at = -math.inf

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimiter:
        """The limiter on the storage the settings choose."""
        storage: Storage
        if settings.ratelimit_storage == "redis":
            storage = RedisStorage(
                settings.redis_url,
                key_prefix=settings.ratelimit_key_prefix,
                wrap_exceptions=True,
            )
        else:
            storage = MemoryStorage(wrap_exceptions=True)
        return cls(settings, storage)

    def ensure_not_locked(self, keys: Sequence[str]) -> None:
        """TooManyRequestsError when any of `keys` has used up its failed authentications."""
        for key in keys:
            for rule in self._auth_rules:
                if not self._safe(partial(self._limiter.test, rule, "authfail", key)):
                    raise self._refusal(rule, ("authfail", key), "failed authentications")

    def record_failure(self, keys: Sequence[str]) -> None:
        """Count one failed authentication against each of `keys`."""
        for key in keys:
            for rule in self._auth_rules:
                self._safe(partial(self._limiter.hit, rule, "authfail", key))

    def hit_expensive(self, kind: str, keys: Sequence[str]) -> None:
        """Count one expensive call per key; TooManyRequestsError once a key is over a rule."""
        for key in keys:
            for rule in self._expensive_rules:
                if not self._safe(partial(self._limiter.hit, rule, "expensive", key)):
                    raise self._refusal(rule, ("expensive", key), f"{kind} calls")

    def _safe(self, call: Callable[[], bool]) -> bool:
        # Counters unreachable (Redis down): let the call through and say so, rather than
        # turn every request into an error; authentication itself still applies.
        if not self.enabled:
            return True
        try:
            return call()
        except StorageError as exc:
            if time.monotonic() - self._warned_at > 60:  # once a minute, not once a request
                self._warned_at = time.monotonic()
                log.warning("rate-limit storage unavailable; not limiting: %s", exc)
            return True

    def _refusal(
        self, rule: RateLimitItem, ids: tuple[str, str], what: str
    ) -> TooManyRequestsError:
        try:
            reset = self._limiter.get_window_stats(rule, *ids).reset_time
        except StorageError:
            reset = time.time() + rule.get_expiry()
        wait = max(1, math.ceil(reset - time.time()))
        return TooManyRequestsError(
            f"too many {what} ({rule}); try again in {wait} s", retry_after_s=wait
        )


def install_rate_limits(app: FastAPI, settings: Settings) -> None:
    """Attach the limiter to `app` and answer TooManyRequestsError with 429 + Retry-After."""
    app.state.rate_limiter = RateLimiter.from_settings(settings)

    async def _too_many(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, TooManyRequestsError)
        log.warning("rate limited: %s", exc.detail)
        return problem(
            request,
            exc.status,
            exc.title,
            exc.detail,
            slug=exc.slug,
            headers={"Retry-After": str(exc.retry_after_s)},
        )

    app.add_exception_handler(TooManyRequestsError, _too_many)
