"""`relreq serve`: one process that runs the whole system on this machine."""

from __future__ import annotations

import logging

from release_requests import db
from release_requests.config import get_config
from release_requests.runtime import migrated_url
from release_requests.settings import get_settings

log = logging.getLogger("release_requests.server")


def build_app():
    """The API wired to the configured database (migrated) and validated policy."""
    from release_requests.api.app import create_app

    settings = get_settings()
    config = get_config()
    sessions = db.make_sessionmaker(db.make_engine(migrated_url()))
    return create_app(settings=settings, config=config, sessions=sessions)


def run(*, host: str, port: int) -> None:
    import uvicorn

    from release_requests.logs import configure_logging

    configure_logging()
    app = build_app()
    log.info("serving API and console on http://%s:%d", host, port)
    uvicorn.run(app, host=host, port=port, log_config=None)
