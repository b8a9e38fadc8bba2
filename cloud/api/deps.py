"""FastAPI dependencies, as Annotated aliases: settings, pool, connection, caller, role checks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated, Any

import psycopg
from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from psycopg_pool import ConnectionPool

from cloud.core.errors import AuthenticationError
from cloud.core.security import Principal, Role, decode_token
from cloud.core.settings import Settings
from cloud.db.repositories.auth import principal_for_api_key


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


def get_conn(pool: PoolDep) -> Iterator[psycopg.Connection[Any]]:
    """A pooled connection for one request; committed on success, rolled back on error."""
    with pool.connection() as conn:
        yield conn


ConnDep = Annotated[psycopg.Connection[Any], Depends(get_conn)]

_bearer = HTTPBearer(auto_error=False, description="JWT issued by `mallpulse cloud token`.")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key.")


def get_principal(
    settings: SettingsDep,
    pool: PoolDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    api_key: Annotated[str | None, Security(_api_key)],
) -> Principal:
    """The authenticated caller, from a bearer JWT or an X-API-Key header."""
    if bearer is not None:
        return decode_token(settings, bearer.credentials)
    if api_key:
        with pool.connection() as conn:
            principal = principal_for_api_key(conn, api_key)
        if principal is None:
            raise AuthenticationError("unknown or revoked API key")
        return principal
    raise AuthenticationError(
        "send 'Authorization: Bearer <token>' or 'X-API-Key: <key>' "
        "(create one with `mallpulse cloud token` or `mallpulse cloud apikey`)"
    )


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
