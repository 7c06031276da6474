"""Two installations on one Postgres cluster (staging beside production) share nothing in Prefect.

Both databases are clones of the same template, so their first requests have the same id and their
segment triggers the same key — exactly the collision that handed one installation the other's runs.
"""

from __future__ import annotations

import httpx
from sqlalchemy import create_engine, select, text
from sqlalchemy.pool import NullPool

from release_requests import db, runtime
from release_requests.config import get_config
from release_requests.installation import installation_name, prefect_database
from release_requests.pipeline.models import SegmentTrigger
from release_requests.pipeline.service import enqueue
from release_requests.server import prefect_database_url
from release_requests.settings import get_settings
from tests.conftest import Builder, clone_database

CACHES = (get_settings, runtime.session_factory, get_config)


def _use(monkeypatch, url: str) -> None:
    """This process now acts as the installation whose database is `url` (as `relreq serve` would)."""
    monkeypatch.setenv("RR_DATABASE_URL", url)
    for cache in CACHES:
        cache.cache_clear()


def test_each_installation_dispatches_to_its_own_deployment_with_its_own_keys(
    pg_server, admin_url, template_db, prefect_client_env, monkeypatch
):
    from flows.pipeline import dispatch_pending
    from flows.worker import register

    production, staging = (clone_database(pg_server, admin_url, template_db) for _ in range(2))
    seen = {}
    try:
        for url in (production, staging):
            _use(monkeypatch, url)
            installation = installation_name(url)
            pool = register(url)  # no worker polls the pool: the run stays scheduled where we can look at it
            with db.transaction(runtime.session_factory()) as s:
                b = Builder(s, get_config())
                request = b.request(by=b.person("duty_manager"), customer=b.customer(), severity=2)
                key = enqueue(s, request_id=request.id, step="build:1", decision_id="accepted").key
            assert dispatch_pending() == [key]
            with db.transaction(runtime.session_factory()) as s:
                run_id = s.scalar(select(SegmentTrigger.flow_run_id).where(SegmentTrigger.key == key))
            run = httpx.get(f"{prefect_client_env}/flow_runs/{run_id}").json()
            deployment = httpx.get(f"{prefect_client_env}/deployments/{run['deployment_id']}").json()
            seen[installation] = {"key": key, "run": run, "deployment": deployment["name"], "pool": pool}
    finally:
        for cache in CACHES:
            cache.cache_clear()

    (prod, prod_seen), (stag, stag_seen) = seen.items()
    assert prod != stag
    assert prod_seen["key"] == stag_seen["key"]  # the same request id and step in both installations …
    assert prod_seen["run"]["id"] != stag_seen["run"]["id"]  # … and still two runs, one each
    for installation, what in seen.items():
        assert what["deployment"] == f"segment@{installation}"
        assert what["run"]["work_pool_name"] == what["pool"] == f"release-requests@{installation}"
        assert what["run"]["idempotency_key"] == f"{installation}:{what['key']}#1"
        assert what["run"]["parameters"]["trigger_key"] == what["key"]


def test_each_installation_has_its_own_prefect_database(pg_server, admin_url, template_db, db_url, prefect_api):
    production, staging = (clone_database(pg_server, admin_url, template_db) for _ in range(2))
    urls = [prefect_database_url(production), prefect_database_url(staging)]
    names = [url.split("?")[0].rsplit("/", 1)[1] for url in urls]
    assert names == [f"{installation_name(u)}_prefect" for u in (production, staging)]
    assert all(url.startswith("postgresql+asyncpg://") for url in urls)
    engine = create_engine(admin_url, poolclass=NullPool)
    with engine.connect() as conn:
        databases = set(conn.scalars(text("SELECT datname FROM pg_database")))
    engine.dispose()
    # the session's Prefect server, too, lives beside the shared test database, and nothing uses a fixed name
    assert {*names, f"{installation_name(db_url)}_prefect"} <= databases and "prefect" not in databases


def test_prefect_database_names_stay_valid_postgres_identifiers():
    assert prefect_database("release_requests") == "release_requests_prefect"  # the embedded default
    long_a, long_b = "a" * 60 + "x", "a" * 60 + "y"
    names = {prefect_database(long_a), prefect_database(long_b)}
    assert len(names) == 2 and all(len(n.encode()) <= 63 and n.endswith("_prefect") for n in names)
    assert installation_name("postgresql+psycopg://u@h/rr%2Fodd") != installation_name(
        "postgresql+psycopg://u@h/rr_odd"
    )
    assert "/" not in installation_name("postgresql+psycopg://u@h/rr%2Fodd")
