"""The console's routers and static files, installed on the API's application (one port, one process)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from release_requests.web import (
    auth_views,
    channels_views,
    duty_views,
    healthchecks_views,
    mail_views,
    pipeline_views,
    portal_views,
    queue_views,
    reports_views,
    request_views,
)
from release_requests.web.rendering import STATIC


def install(app: FastAPI) -> None:
    # order matters where paths overlap: /requests/new (portal) before /requests/{request_id}
    pages = (auth_views, portal_views, queue_views, request_views, pipeline_views, channels_views, duty_views)
    for module in (*pages, reports_views, healthchecks_views, mail_views):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
