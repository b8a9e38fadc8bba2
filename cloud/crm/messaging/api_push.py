"""Messaging: the Web Push routes. The VAPID public key and the two scripts are public; a page
stores or deletes its customer's subscription with a customer push token (X-Push-Token) that the
shop's backend gets from POST /push/tokens (marketer credentials). These routes are called from
shop pages on other origins, so they answer CORS (the token, not a cookie, is the credential)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Header, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from cloud.api.deps import ConnDep, MarketerDep, SettingsDep
from cloud.api.problems import problem_responses
from cloud.api.schemas.limits import PG_BIGINT_MAX
from cloud.core.errors import AuthenticationError
from cloud.core.settings import Settings
from cloud.crm.messaging import webpush_js, webpush_store
from cloud.crm.messaging.channels.base import build_channel
from cloud.crm.messaging.channels.webpush import Subscription, WebPushChannel, WebPushConfig
from cloud.crm.messaging.config import messaging_config
from cloud.crm.messaging.errors import MessagingInvalidInputError, MessagingNotFoundError

router = APIRouter(tags=["messaging"])
PREFIX = "/v1/messaging/push"
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type, X-Push-Token",
    "Access-Control-Max-Age": "600",
}
PushTokenDep = Annotated[str, Header(alias="X-Push-Token", min_length=10, max_length=300)]


class VapidKeyPublic(BaseModel):
    """The key a page passes to PushManager.subscribe as applicationServerKey."""

    public_key: str = Field(description="Uncompressed P-256 point, base64url.")


class PushTokenRequest(BaseModel):
    """Whose subscriptions the token will manage."""

    model_config = ConfigDict(extra="forbid")
    profile_id: int = Field(ge=1, le=PG_BIGINT_MAX, description="The customer.")


class PushTokenPublic(BaseModel):
    """A customer push token for a page."""

    token: str = Field(description="Send as X-Push-Token.")
    expires_at: datetime = Field(description="When it stops working.")


class PushSubscriptionPublic(BaseModel):
    """A stored subscription (without its keys)."""

    id: int
    profile_id: int
    endpoint: str
    created_at: datetime
    updated_at: datetime


def _config(settings: Settings) -> WebPushConfig:
    for config in messaging_config(settings).channels.values():
        if isinstance(config, WebPushConfig):
            return config
    raise MessagingNotFoundError("web push is not configured (no channel of type 'webpush')")


def _secret(config: WebPushConfig) -> str:
    if config.subscription_secret is None:
        raise MessagingNotFoundError("web push subscriptions need subscription_secret configured")
    return config.subscription_secret.get_secret_value()


def _profile(settings: Settings, token: str) -> int:
    try:
        return webpush_store.verify_token(_secret(_config(settings)), token)
    except webpush_store.BadPushTokenError as exc:
        raise AuthenticationError(f"X-Push-Token: {exc}") from exc


@router.options(PREFIX + "/subscriptions", include_in_schema=False)
@router.options(PREFIX + "/vapid-public-key", include_in_schema=False)
def preflight() -> Response:
    """CORS preflight for shop pages."""
    return Response(status_code=204, headers=CORS)


@router.get(PREFIX + "/vapid-public-key", summary="The VAPID public key")
def vapid_public_key(settings: SettingsDep, response: Response) -> VapidKeyPublic:
    """The applicationServerKey for PushManager.subscribe; 404 when web push is not set up."""
    channel = build_channel(_config(settings))
    assert isinstance(channel, WebPushChannel)
    response.headers.update(CORS)
    return VapidKeyPublic(public_key=channel.public_key)


@router.get(PREFIX + "/sw.js", summary="The push service worker")
def service_worker() -> Response:
    """Host it at the shop's origin (a service worker must be same-origin with the page)."""
    return Response(webpush_js.SERVICE_WORKER, media_type="text/javascript", headers=CORS)


@router.get(PREFIX + "/push.js", summary="The page helper")
def page_helper() -> Response:
    """MallPulsePush.subscribe / unsubscribe for the shop page."""
    return Response(webpush_js.PAGE_HELPER, media_type="text/javascript", headers=CORS)


@router.post(
    PREFIX + "/tokens",
    summary="A customer push token for a page",
    status_code=201,
    responses=problem_responses(404, 422),
)
def issue_token(
    body: PushTokenRequest, conn: ConnDep, settings: SettingsDep, _: MarketerDep
) -> PushTokenPublic:
    """Signed, expiring; lets a page manage only this customer's subscriptions."""
    secret = _secret(_config(settings))
    if not webpush_store.profile_exists(conn, body.profile_id):
        raise MessagingNotFoundError(f"no customer {body.profile_id}")
    token, expires = webpush_store.sign_token(secret, profile_id=body.profile_id)
    return PushTokenPublic(token=token, expires_at=datetime.fromtimestamp(expires, UTC))


@router.post(
    PREFIX + "/subscriptions",
    summary="Store the browser's push subscription",
    status_code=201,
    responses=problem_responses(401, 404, 422),
)
def store_subscription(
    body: Subscription,
    token: PushTokenDep,
    conn: ConnDep,
    settings: SettingsDep,
    response: Response,
    user_agent: Annotated[str | None, Header(max_length=512)] = None,
) -> PushSubscriptionPublic:
    """Create or replace (by endpoint) the subscription of the token's customer."""
    profile_id = _profile(settings, token)
    config = _config(settings)
    try:
        body.validate_endpoint(allow_http=config.allow_http_endpoints)
    except ValueError as exc:
        raise MessagingInvalidInputError(f"endpoint: {exc}") from exc
    if not webpush_store.profile_exists(conn, profile_id):
        raise MessagingNotFoundError(f"no customer {profile_id}")
    row = webpush_store.upsert(conn, profile_id=profile_id, sub=body, user_agent=user_agent)
    response.headers.update(CORS)
    return PushSubscriptionPublic.model_validate(row, from_attributes=True)


@router.delete(
    PREFIX + "/subscriptions",
    summary="Delete the browser's push subscription",
    status_code=204,
    responses=problem_responses(401, 404, 422),
)
def delete_subscription(
    token: PushTokenDep,
    endpoint: Annotated[str, Query(min_length=10, max_length=2048)],
    conn: ConnDep,
    settings: SettingsDep,
) -> Response:
    """Only the token's customer's own subscription; 404 when there is none."""
    profile_id = _profile(settings, token)
    if not webpush_store.delete(conn, endpoint=endpoint, profile_id=profile_id):
        raise MessagingNotFoundError("no such subscription for this customer")
    return Response(status_code=204, headers=CORS)


@router.get(
    PREFIX + "/subscriptions",
    summary="A customer's push subscriptions",
    responses=problem_responses(422),
)
def list_subscriptions(
    profile_id: Annotated[int, Query(ge=1, le=PG_BIGINT_MAX)], conn: ConnDep, _: MarketerDep
) -> list[PushSubscriptionPublic]:
    """Oldest first."""
    rows = webpush_store.for_profile(conn, profile_id)
    return [PushSubscriptionPublic.model_validate(r, from_attributes=True) for r in rows]
