"""Event collection routes (write-key auth, Segment-style) and the browser SDK; the marketer
routes of sources, tracking plans and violations are in cloud.crm.events.api_admin."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from cloud.api.deps import ConnDep, get_pool
from cloud.api.problems import problem, problem_responses
from cloud.api.routes.customers_deps import RulesDep
from cloud.core.errors import CloudError, InvalidInputError
from cloud.crm.events import api_admin, service, sources
from cloud.crm.events.schemas import MAX_BODY_BYTES, BatchIn, BatchResult, CallIn, SingleIn


def basic_user(request: Request) -> str | None:
    """The user name of the request's HTTP Basic credentials (the write key), if any."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic" or not token:
        return None
    try:
        user = base64.b64decode(token, validate=True).decode().partition(":")[0]
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user or None


def body_key(raw: bytes) -> str | None:
    """The `writeKey` of a JSON body, if it has a usable one (the body need not be valid)."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    key = data.get("writeKey", data.get("write_key")) if isinstance(data, dict) else None
    return key if isinstance(key, str) and key else None


def _authenticate_request(request: Request, raw: bytes) -> None:
    """WriteKeyError unless the request carries the write key of a live source."""
    with get_pool(request).connection() as conn:
        sources.authenticate(conn, basic_user(request) or body_key(raw))


class _WriteKeyRoute(APIRoute):
    """A collection route: a request without a live write key is a 401 whatever its body is
    (FastAPI validates the body before the handler could authenticate: 422 first)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def authenticated_first(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError:
                await run_in_threadpool(_authenticate_request, request, await request.body())
                raise

        return authenticated_first


router = APIRouter(prefix="/v1/events", tags=["events"], route_class=_WriteKeyRoute)
sdk_router = APIRouter(tags=["events"])

_basic = HTTPBasic(
    auto_error=False, description="The source's write key as user name, empty password."
)
WriteKeyAuth = Annotated[HTTPBasicCredentials | None, Depends(_basic)]
#: The SDK posts from shop pages on other origins; answers must be readable there.
CORS = {"Access-Control-Allow-Origin": "*"}
_COLLECT = problem_responses(413, 422)


def _key(creds: HTTPBasicCredentials | None, body_key: str | None) -> str | None:
    return creds.username if creds is not None and creds.username else body_key


@router.post("/batch", summary="Collect a batch of calls", responses=_COLLECT)
def collect_batch(
    body: BatchIn, conn: ConnDep, rules: RulesDep, creds: WriteKeyAuth
) -> BatchResult:
    """Segment's /v1/batch: store the calls (a retried messageId is a duplicate, not a row)."""
    source = sources.authenticate(conn, _key(creds, body.write_key))
    return service.ingest(
        conn, source=source, calls=body.batch, received_at=datetime.now(UTC),
        sent_at=body.sent_at, context=body.context, rules=rules,
    )  # fmt: skip


def _single(kind: Literal["track", "identify", "page", "screen", "alias"]) -> Any:
    def collect_one(
        body: SingleIn, conn: ConnDep, rules: RulesDep, creds: WriteKeyAuth
    ) -> BatchResult:
        source = sources.authenticate(conn, _key(creds, body.write_key))
        if body.type is not None and body.type != kind:
            raise InvalidInputError(f"`type` is {body.type!r} but this endpoint takes {kind!r}")
        call = _as_call(body.model_dump(by_alias=True, exclude={"write_key"}) | {"type": kind})
        return service.ingest(
            conn, source=source, calls=[call], received_at=datetime.now(UTC), rules=rules
        )

    collect_one.__doc__ = f"Segment's /v1/{kind}: store one {kind} call."
    collect_one.__name__ = f"collect_{kind}"
    return collect_one


def _as_call(data: dict[str, Any]) -> CallIn:
    try:
        return CallIn.model_validate(data)
    except ValidationError as exc:
        raise InvalidInputError("the call failed validation", errors=_errors(exc)) from exc


for _kind in ("track", "identify", "page", "screen", "alias"):
    router.post(f"/{_kind}", summary=f"Collect one {_kind} call", responses=_COLLECT)(
        _single(_kind)
    )


async def _raw_body(request: Request) -> bytes:
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise _TooLargeError(f"the body is larger than {MAX_BODY_BYTES} bytes")
    return body


class _TooLargeError(CloudError):
    status = 413
    slug = "payload-too-large"
    title = "Payload too large"


_COLLECT_BODY = {
    "requestBody": {
        "required": True,
        "description": "A batch as for /v1/events/batch, with `writeKey`, as text/plain JSON.",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    }
}


@router.post(
    "/collect", summary="Collect a batch from a browser",
    responses=problem_responses(401, 413, 422),
    openapi_extra=_COLLECT_BODY,
)  # fmt: skip
def collect_browser(
    request: Request, raw: Annotated[bytes, Depends(_raw_body)], conn: ConnDep, rules: RulesDep
) -> Response:
    """The SDK's endpoint: a text/plain JSON batch (no CORS preflight, usable by sendBeacon),
    the write key in the body; every answer, errors included, is readable cross-origin."""
    try:
        source = sources.authenticate(conn, body_key(raw))  # 401 before the body is judged
        body = _parse_batch(raw)
        result = service.ingest(
            conn, source=source, calls=body.batch, received_at=datetime.now(UTC),
            sent_at=body.sent_at, context=body.context, rules=rules,
        )  # fmt: skip
    except CloudError as exc:
        challenge = getattr(exc, "challenge", None)
        auth = {"WWW-Authenticate": str(challenge)} if exc.status == 401 and challenge else {}
        return problem(
            request, exc.status, exc.title, exc.detail, slug=exc.slug, errors=exc.errors,
            headers={**CORS, **auth},
        )  # fmt: skip
    return JSONResponse(result.model_dump(mode="json"), headers=CORS)


def _parse_batch(raw: bytes) -> BatchIn:
    try:
        return BatchIn.model_validate_json(raw)
    except ValidationError as exc:
        raise InvalidInputError("the batch failed validation", errors=_errors(exc)) from exc


def _errors(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"], "type": e["type"]}
        for e in exc.errors(include_url=False, include_input=False)
    ]


@cache
def sdk_source() -> bytes:
    """The browser SDK's JavaScript, as shipped in the package."""
    return resources.files("cloud.crm.events").joinpath("sdk/mallpulse.js").read_bytes()


@sdk_router.get(
    "/v1/sdk/mallpulse.js", summary="The browser SDK",
    responses={200: {"content": {"text/javascript": {}}, "description": "The SDK."}},
    response_class=Response,
)  # fmt: skip
def browser_sdk() -> Response:
    """Plain JavaScript, no build step: `mallpulse.load({writeKey, apiHost, ...})`."""
    return Response(
        sdk_source(), media_type="text/javascript",
        headers={"Cache-Control": "public, max-age=300", **CORS},
    )  # fmt: skip


#: What the app mounts: collection, the SDK and the marketer routes.
events_router = APIRouter()
for _r in (router, sdk_router, api_admin.router):
    events_router.include_router(_r)
