"""FastAPI dependencies: the unit of work and the authenticated caller."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker

from release_requests.config import AppConfig
from release_requests.db import transaction
from release_requests.errors import Unauthenticated
from release_requests.people.models import Person
from release_requests.people.service import authenticate
from release_requests.settings import Settings


@dataclass
class AppContext:
    settings: Settings
    config: AppConfig
    sessions: sessionmaker[Session]

    @contextmanager
    def unit_of_work(self) -> Iterator[Session]:
        with transaction(self.sessions) as session:
            yield session

    @property
    def samples_dir(self) -> Path:
        return self.settings.samples_dir


async def context(request: Request) -> AppContext:
    # async: FastAPI runs a plain `def` dependency in its thread pool, a hop that costs more than this does
    return request.app.state.context


_bearer = HTTPBearer(auto_error=False, description="API token from `relreq users add`")


def caller(
    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer), ctx: AppContext = Depends(context)
) -> Person:
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise Unauthenticated("missing bearer token (Authorization: Bearer <token>)")
    with ctx.unit_of_work() as session:
        return authenticate(session, token=credentials.credentials)
