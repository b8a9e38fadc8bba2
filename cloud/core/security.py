"""Authentication primitives: roles, principals, JWT bearer tokens (PyJWT) and API keys."""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

import jwt

from cloud.core.errors import (
    AuthenticationError,
    InvalidInputError,
    PermissionDeniedError,
    SettingsError,
)
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
    """The authenticated caller; `token_id` is the jti of a bearer token (None for API keys)."""

    subject: str
    role: Role
    store_ids: frozenset[str] = field(default_factory=frozenset)
    token_id: str | None = None

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


@dataclass(frozen=True)
class IssuedToken:
    """A signed token with its id (for `mallpulse cloud token revoke`) and expiry (epoch s)."""

    token: str
    jti: str
    expires_at: int


def max_ttl_s(settings: Settings, role: Role) -> int:
    """The longest lifetime a token of `role` may have (MALLPULSE_JWT_MAX_TTL_<ROLE>_S)."""
    caps = {
        Role.ADMIN: settings.jwt_max_ttl_admin_s,
        Role.HQ_MARKETER: settings.jwt_max_ttl_hq_marketer_s,
        Role.STORE_MANAGER: settings.jwt_max_ttl_store_manager_s,
        Role.DEVICE: settings.jwt_max_ttl_device_s,
    }
    return caps[role]


def longest_ttl_s(settings: Settings) -> int:
    """The longest lifetime any accepted token can have (how long a revocation must be kept)."""
    return max(max_ttl_s(settings, role) for role in Role)


def key_id(secret: str) -> str:
    """A short public id of a signing secret (the JWT `kid`), so rotation can keep the old one."""
    return hashlib.sha256(b"mallpulse-kid:" + secret.encode("utf-8")).hexdigest()[:12]


def _secret(settings: Settings) -> str:
    if settings.jwt_secret is None:
        raise SettingsError(
            "MALLPULSE_JWT_SECRET is not set; generate one with `openssl rand -hex 32`"
        )
    return settings.jwt_secret.get_secret_value()


def _verification_secrets(settings: Settings) -> dict[str, str]:
    found = {key_id(_secret(settings)): _secret(settings)}
    if settings.jwt_previous_secret is not None:
        previous = settings.jwt_previous_secret.get_secret_value()
        found.setdefault(key_id(previous), previous)
    return found


def mint_token(
    settings: Settings,
    *,
    subject: str,
    role: Role,
    store_ids: frozenset[str] | set[str] = frozenset(),
    ttl_s: int | None = None,
) -> IssuedToken:
    """Sign a JWT (HS256) for a principal; InvalidInputError when `ttl_s` exceeds the role's cap."""
    cap = max_ttl_s(settings, role)
    if ttl_s is not None and not 0 < ttl_s <= cap:
        raise InvalidInputError(
            f"a {role.value} token may live 1 to {cap} seconds "
            f"(MALLPULSE_JWT_MAX_TTL_{role.value.upper()}_S), not {ttl_s}"
        )
    now = int(time.time())
    jti = uuid.uuid4().hex
    expires_at = now + (ttl_s or min(settings.jwt_ttl_s, cap))
    claims = {
        "iss": settings.jwt_issuer,
        "sub": subject,
        "role": role.value,
        "stores": sorted(store_ids),
        "iat": now,
        "exp": expires_at,
        "jti": jti,
    }
    secret = _secret(settings)
    token = jwt.encode(claims, secret, algorithm="HS256", headers={"kid": key_id(secret)})
    return IssuedToken(token=token, jti=jti, expires_at=expires_at)


def issue_token(
    settings: Settings,
    *,
    subject: str,
    role: Role,
    store_ids: frozenset[str] | set[str] = frozenset(),
    ttl_s: int | None = None,
) -> str:
    """Sign a JWT (HS256) for a principal; only the token (see `mint_token` for its id)."""
    return mint_token(settings, subject=subject, role=role, store_ids=store_ids, ttl_s=ttl_s).token


def decode_token(settings: Settings, token: str) -> Principal:
    """Verify a JWT and return its principal; AuthenticationError when invalid or expired.

    Revocation is checked by the caller (it needs the database): see `Principal.token_id`.
    """
    try:
        kid = jwt.get_unverified_header(token).get("kid")
        keys = _verification_secrets(settings)
        secret = keys.get(str(kid)) if kid is not None else _secret(settings)
        if secret is None:
            raise jwt.InvalidTokenError("signed with an unknown or retired key")
        claims = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            issuer=settings.jwt_issuer,
            options={"require": ["exp", "sub", "iss"]},
        )
        role = Role(claims["role"])
    except jwt.ExpiredSignatureError as exc:
        raise AuthenticationError("the bearer token has expired; request a new one") from exc
    except (jwt.InvalidTokenError, KeyError, ValueError) as exc:
        raise AuthenticationError(f"invalid bearer token: {exc}") from exc
    _check_claims(settings, claims, role)
    return Principal(
        subject=str(claims["sub"]),
        role=role,
        store_ids=frozenset(claims.get("stores") or []),
        token_id=str(claims["jti"]),
    )


def _check_claims(settings: Settings, claims: dict[str, object], role: Role) -> None:
    stores = claims.get("stores") or []
    if not isinstance(stores, list) or not all(isinstance(s, str) for s in stores):
        raise AuthenticationError("invalid bearer token: 'stores' must be a list of store ids")
    # Checked after PyJWT's own checks so that an expired token is reported as expired.
    exp, iat, jti = claims["exp"], claims.get("iat"), claims.get("jti")
    if not isinstance(jti, str) or not jti:
        raise AuthenticationError("invalid bearer token: no token id (jti); request a new one")
    if not isinstance(exp, int | float) or not isinstance(iat, int | float):
        raise AuthenticationError("invalid bearer token: 'exp' and 'iat' must be numbers")
    # A token minted with a longer life than its role allows (e.g. before the caps existed,
    # or with a leaked secret) is refused even before it expires.
    if exp - iat > max_ttl_s(settings, role):
        raise AuthenticationError(
            f"the bearer token lives longer than a {role.value} token may; request a new one"
        )


class RevocationCache:
    """Remembers for `ttl_s` whether a token id is revoked, so not every request asks the DB."""

    def __init__(self, ttl_s: float, *, max_entries: int = 50_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._seen: dict[str, tuple[bool, float]] = {}
        self._lock = threading.Lock()

    def is_revoked(self, jti: str, lookup: Callable[[str], bool]) -> bool:
        """The cached answer for `jti`, or `lookup(jti)` when none or older than `ttl_s`."""
        now = time.monotonic()
        with self._lock:
            hit = self._seen.get(jti)
        if hit is not None and now - hit[1] < self.ttl_s:
            return hit[0]
        revoked = lookup(jti)
        with self._lock:
            if len(self._seen) >= self.max_entries:
                self._seen.clear()  # bounded memory; the next look-ups refill it
            self._seen[jti] = (revoked, now)
        return revoked


def generate_api_key() -> str:
    """A new random API key (shown once; only its hash is stored)."""
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    """SHA-256 hex digest of an API key (keys are high-entropy, so no slow hash is needed)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()
