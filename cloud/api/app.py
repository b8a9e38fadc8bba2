"""The FastAPI app factory; nothing is built at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from psycopg_pool import ConnectionPool

from cloud.api.headers import docs_urls, install_security_headers
from cloud.api.metrics_middleware import MetricsMiddleware
from cloud.api.middleware import BodyLimitMiddleware, RequestIdMiddleware
from cloud.api.problems import document_problems, install_problem_handlers
from cloud.api.ratelimit import install_rate_limits
from cloud.api.routes import ROUTERS
from cloud.api.routes.customers_import import IMPORT_PATH
from cloud.core.errors import SettingsError
from cloud.core.security import RevocationCache
from cloud.core.settings import Settings
from cloud.crm.analytics.api import router as analytics_router
from cloud.crm.attribution.api import router as attribution_router
from cloud.crm.automation.api import router as automation_router
from cloud.crm.events.api import events_router
from cloud.crm.experiments.api import router as experiments_router
from cloud.crm.messaging import api as messaging_api
from cloud.crm.messaging import api_inbox, api_push, api_tracking
from cloud.crm.scoring.api import router as scoring_router
from cloud.crm.segments.api import router as segments_router
from cloud.db.pool import open_pool


def create_app(settings: Settings, *, pool: ConnectionPool | None = None) -> FastAPI:
    """Build the API; a given `pool` stays the caller's, otherwise the app opens its own."""
    if settings.jwt_secret is None:
        raise SettingsError("MALLPULSE_JWT_SECRET is not set; the API needs it to verify tokens")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = pool is None
        app.state.pool = open_pool(settings, name="mallpulse-api") if owned else pool
        try:
            yield
        finally:
            if owned:
                app.state.pool.close()

    app = FastAPI(
        title="MallPulse API",
        version="1.0",
        summary="Live footfall for store managers and the CRM for headquarters marketers.",
        lifespan=lifespan,
        **docs_urls(settings),
    )
    app.state.settings = settings
    app.state.pool = pool
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.api_max_body_bytes,
        route_limits={IMPORT_PATH: settings.api_max_import_bytes},
    )
    app.add_middleware(RequestIdMiddleware)
    app.add_middleware(MetricsMiddleware)  # outermost: times whole requests, by route
    install_security_headers(app, settings)
    install_problem_handlers(app)
    document_problems(app)  # every error status in /openapi.json, as problem+json
    install_rate_limits(app, settings)
    app.state.token_revocations = RevocationCache(settings.token_revocation_cache_s)
    for router in ROUTERS:
        app.include_router(router)
    for feature_router in (
        messaging_api.router,  # the messaging hub: templates, send, status
        api_tracking.router,  # delivery webhooks, opens, clicks
        api_inbox.router,  # the unified inbox
        api_push.router,  # web push subscriptions
        analytics_router,
        events_router,
        segments_router,
        automation_router,
        scoring_router,
        experiments_router,
        attribution_router,
    ):
        app.include_router(feature_router)
    return app
