"""FastAPI dependencies, as Annotated aliases: settings, pool, connection, caller, role checks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import jwt
import psycopg
from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from psycopg_pool import ConnectionPool

from cloud.api.problems import database_error
from cloud.api.ratelimit import RateLimiter, client_address, expensive_kind
from cloud.core.errors import AuthenticationError, CloudError, ConflictError
from cloud.core.security import Principal, RevocationCache, Role, decode_token
from cloud.core.settings import Settings
from cloud.db.repositories.auth import is_token_revoked, principal_for_api_key


def get_settings(request: Request) -> Settings:
    """The Settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


def get_pool(request: Request) -> ConnectionPool:
    """The app's connection pool."""
    pool: ConnectionPool = request.app.state.pool
    return pool


SettingsDep = Annotated[Settings, Depends(get_settings)]
PoolDep = Annotated[ConnectionPool, Depends(get_pool)]


class CommitFailedError(CloudError):
    """The request's changes could not be committed; nothing was saved."""

    status = 503
    slug = "commit-failed"
    title = "Not saved"


def not_saved(exc: psycopg.Error) -> CloudError:
    """The answer to a failed COMMIT: 409 for a conflict, the client error the database found,
    else 503; each says that nothing was saved."""
    diag = getattr(exc, "diag", None)
    reason = (diag.message_primary if diag is not None else None) or str(exc).splitlines()[0]
    if isinstance(exc, psycopg.errors.SerializationFailure | psycopg.errors.DeadlockDetected):
        return ConflictError(f"nothing was saved: a concurrent change conflicted; retry ({reason})")
    client = database_error(exc)
    if client is not None:
        client.detail = f"nothing was saved: {client.detail}"
        return client
    return CommitFailedError(f"nothing was saved: the commit failed ({reason}); retry later")


@contextmanager
def committing(pool: ConnectionPool) -> Iterator[psycopg.Connection[Any]]:
    """A pooled connection committed on leaving the block, a failed COMMIT raised as the problem
    the client gets (409, the database's client error, or 503); rolled back on error."""
    with pool.connection() as conn:
        yield conn
        try:
            conn.commit()
        except psycopg.Error as exc:
            raise not_saved(exc) from exc


def get_conn(pool: PoolDep) -> Iterator[psycopg.Connection[Any]]:
    """A pooled connection for one request, committed before the response is sent (a 2xx means
    committed; a failed commit is the error response); rolled back on error."""
    with committing(pool) as conn:
        yield conn


# scope="function": the teardown (the commit) runs when the endpoint returns, before the response
# is sent; the default "request" scope would run it after the client already has its answer.
ConnDep = Annotated[psycopg.Connection[Any], Depends(get_conn, scope="function")]

_bearer = HTTPBearer(auto_error=False, description="JWT issued by `mallpulse cloud token`.")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key.")


def _claimed_subject(token: str) -> str | None:
    # Unverified on purpose: only a key for counting failures, never trusted for access.
    try:
        sub = jwt.decode(token, options={"verify_signature": False}).get("sub")
    except jwt.InvalidTokenError:
        return None
    return sub[:200] if isinstance(sub, str) and sub else None


def _authenticate(
    request: Request, settings: Settings, pool: ConnectionPool, bearer: str | None, key: str
) -> Principal:
    if bearer is not None:
        principal = decode_token(settings, bearer)
        cache: RevocationCache = request.app.state.token_revocations
        if principal.token_id is not None:

            def lookup(jti: str) -> bool:
                with pool.connection() as conn:
                    return is_token_revoked(conn, jti)

            if cache.is_revoked(principal.token_id, lookup):
                raise AuthenticationError("the bearer token has been revoked; request a new one")
        return principal
    with pool.connection() as conn:
        found = principal_for_api_key(conn, key)
    if found is None:
        raise AuthenticationError("unknown, expired or revoked API key")
    return found


def get_principal(
    request: Request,
    settings: SettingsDep,
    pool: PoolDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    api_key: Annotated[str | None, Security(_api_key)],
) -> Principal:
    """The authenticated caller, from a bearer JWT or an X-API-Key header.

    Failed attempts are limited per client address and per claimed subject (then even right
    credentials get 429 until the window passes); expensive calls per caller and address.
    """
    if bearer is None and not api_key:
        raise AuthenticationError(
            "send 'Authorization: Bearer <token>' or 'X-API-Key: <key>' (create one with "
            "`mallpulse cloud token` or `mallpulse cloud apikey create`)"
        )
    limiter: RateLimiter = request.app.state.rate_limiter
    address = client_address(request, limiter.networks)
    keys = [f"addr:{address}"]
    claimed = _claimed_subject(bearer.credentials) if bearer is not None else None
    if claimed:
        keys.append(f"sub:{claimed}")
    limiter.ensure_not_locked(keys)
    try:
        token = bearer.credentials if bearer is not None else None
        principal = _authenticate(request, settings, pool, token, api_key or "")
    except AuthenticationError:
        limiter.record_failure(keys)
        raise
    kind = expensive_kind(request, limiter.long_range_days)
    if kind is not None:
        limiter.hit_expensive(kind, [f"caller:{principal.subject}", f"addr:{address}"])
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require_roles(*roles: Role) -> Callable[[Principal], Principal]:
    """A dependency that admits only callers with one of `roles`."""

    def _check(principal: PrincipalDep) -> Principal:
        principal.require_role(*roles)
        return principal

    return _check


#: Marketers and admins: the CRM and chain-wide views.
MarketerDep = Annotated[Principal, Depends(require_roles(Role.ADMIN, Role.HQ_MARKETER))]
#: Anyone who may read store footfall (store access is checked per store in the route).
ViewerDep = Annotated[
    Principal, Depends(require_roles(Role.ADMIN, Role.HQ_MARKETER, Role.STORE_MANAGER))
]
AdminDep = Annotated[Principal, Depends(require_roles(Role.ADMIN))]
