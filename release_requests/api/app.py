"""The FastAPI application: routers, error mapping, health check."""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from release_requests.access import needs
from release_requests.api import (
    customers_views,
    duty_views,
    errors,
    healthchecks_views,
    intake_views,
    notifications_views,
    paging_views,
    pipeline_views,
    releases_views,
    report_settings_views,
    reports_views,
    requests_views,
    sla_views,
    slack_views,
    updates_views,
)
from release_requests.api.deps import AppContext
from release_requests.config import AppConfig
from release_requests.notifications.transports import transport_status
from release_requests.settings import Settings
from release_requests.web import app as web


def create_app(*, settings: Settings, config: AppConfig, sessions: sessionmaker[Session]) -> FastAPI:
    app = FastAPI(
        title="release-requests",
        version="1",
        description="Premium-support release requests: intake, triage, builds, staged releases, audit.",
    )
    app.state.context = AppContext(settings=settings, config=config, sessions=sessions)
    errors.install(app)
    app.include_router(requests_views.router)
    app.include_router(customers_views.router)
    app.include_router(sla_views.router)
    app.include_router(duty_views.router)
    app.include_router(paging_views.router)
    app.include_router(intake_views.router)
    app.include_router(pipeline_views.router)
    app.include_router(notifications_views.router)
    app.include_router(slack_views.router)
    app.include_router(releases_views.router)
    app.include_router(updates_views.router)
    app.include_router(healthchecks_views.router)
    app.include_router(report_settings_views.router)
    app.include_router(reports_views.router)
    web.install(app)  # the console and portal: `/` for browsers, /login, pages (docs/web.md)

    @app.get("/healthz", tags=["meta"], openapi_extra=needs("public"))
    def healthz() -> dict:
        with app.state.context.unit_of_work() as session:
            session.execute(text("SELECT 1"))
        # which notification transports this installation has ("slack": "not configured: RR_SLACK_TOKEN unset");
        # why a setting is invalid may name internal hosts: that stays in the server's log
        transports = {
            name: "invalid: see the server log" if status.startswith("invalid") else status
            for name, status in transport_status(settings).items()
        }
        return {"status": "ok", "notifications": transports}

    return app
