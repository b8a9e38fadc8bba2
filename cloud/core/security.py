"""Authentication primitives: roles, principals, JWT bearer tokens (PyJWT) and API keys."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass, field
from enum import StrEnum

import jwt

from cloud.core.errors import AuthenticationError, PermissionDeniedError, SettingsError
from cloud.core.settings import Settings

API_KEY_PREFIX = "mp_"


class Role(StrEnum):
    """What a caller may do: admins everything, marketers all stores and the CRM,
    store managers only their stores' footfall, devices ingest only."""

    ADMIN = "admin"
    HQ_MARKETER = "hq_marketer"
    STORE_MANAGER = "store_manager"
    DEVICE = "device"


@dataclass(frozen=True)
class Principal:
    """The authenticated caller."""

    subject: str
    role: Role
    store_ids: frozenset[str] = field(default_factory=frozenset)

    def can_see_store(self, store_id: str) -> bool:
        """True when this caller may read data of `store_id`."""
        if self.role in (Role.ADMIN, Role.HQ_MARKETER):
            return True
        return self.role is Role.STORE_MANAGER and store_id in self.store_ids

    def require_store(self, store_id: str) -> None:
        """Raise PermissionDeniedError unless this caller may read `store_id`."""
        if not self.can_see_store(store_id):
            raise PermissionDeniedError(
                f"{self.role.value} '{self.subject}' has no access to store '{store_id}'"
            )

    def require_role(self, *roles: Role) -> None:
        """Raise PermissionDeniedError unless the caller has one of `roles`."""
        if self.role not in roles:
            allowed = ", ".join(r.value for r in roles)
            raise PermissionDeniedError(f"this operation needs one of the roles: {allowed}")


def _secret(settings: Settings) -> str:
    if settings.jwt_secret is None:
        raise SettingsError("MALLPULSE_JWT_SECRET is not set; set it to a long random string")
    return settings.jwt_secret.get_secret_value()


def issue_token(
    settings: Settings,
    *,
    subject: str,
    role: Role,
    store_ids: frozenset[str] | set[str] = frozenset(),
    ttl_s: int | None = None,
) -> str:
    """Sign a JWT (HS256) for a principal."""
    now = int(time.time())
    claims = {
        "iss": settings.jwt_issuer,
        "sub": subject,
        "role": role.value,
        "stores": sorted(store_ids),
        "iat": now,
        "exp": now + (ttl_s or settings.jwt_ttl_s),
    }
    return jwt.encode(claims, _secret(settings), algorithm="HS256")


def decode_token(settings: Settings, token: str) -> Principal:
    """Verify a JWT and return its principal; AuthenticationError when invalid or expired."""
    try:
        claims = jwt.decode(
            token,
            _secret(settings),
            algorithms=["HS256"],
            issuer=settings.jwt_issuer,
            options={"require": ["exp", "sub", "iss"]},
        )
        role = Role(claims["role"])
    except jwt.ExpiredSignatureError as exc:
        raise AuthenticationError("the bearer token has expired; request a new one") from exc
    except (jwt.InvalidTokenError, KeyError, ValueError) as exc:
        raise AuthenticationError(f"invalid bearer token: {exc}") from exc
    stores = claims.get("stores") or []
    if not isinstance(stores, list) or not all(isinstance(s, str) for s in stores):
        raise AuthenticationError("invalid bearer token: 'stores' must be a list of store ids")
    return Principal(subject=str(claims["sub"]), role=role, store_ids=frozenset(stores))


def generate_api_key() -> str:
    """A new random API key (shown once; only its hash is stored)."""
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    """SHA-256 hex digest of an API key (keys are high-entropy, so no slow hash is needed)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()
