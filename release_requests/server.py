"""`relreq serve`: the whole system on one machine.

Embedded Postgres (unless RR_DATABASE_URL) with the app migrated; a Prefect server on the same Postgres
in its own database `<app database>_prefect` (unless PREFECT_API_URL points at one); the flow runner
serving this installation's deployments; the API in this process. Ctrl-C stops all of it.
Prefect runs in child processes, so this module never imports prefect.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import uvicorn
from sqlalchemy.engine import make_url

from artifacts.signing import KEY_RELPATH, create_signing_key, key_id
from artifacts.starter import init_sigrepo
from release_requests import db, embedded_pg
from release_requests.api.app import create_app
from release_requests.config import AppConfig, get_config
from release_requests.installation import database_name, prefect_database
from release_requests.logs import configure_logging
from release_requests.notifications.transports import configure, unconfigured_warnings
from release_requests.runtime import migrated_url
from release_requests.settings import Settings, get_settings

log = logging.getLogger("release_requests.server")


def build_app():
    """The API wired to the configured database (migrated) and validated policy."""
    sessions = db.make_sessionmaker(db.make_engine(migrated_url()))
    return create_app(settings=get_settings(), config=get_config(), sessions=sessions)


def announce_database(settings: Settings) -> None:
    """Say which database this server uses, and whether its first start creates it (the only place that may)."""
    if settings.database_url:
        log.info("database: %s", make_url(settings.database_url).render_as_string(hide_password=True))
        return
    data_dir = settings.data_dir.resolve()
    if embedded_pg.cluster_exists(settings.postgres_dir.resolve()):
        log.info("database: embedded Postgres in %s (RR_DATA_DIR)", data_dir)
        return
    log.info("no database in %s (RR_DATA_DIR) yet: creating the embedded Postgres there", data_dir)
    for legacy in db.legacy_data_dirs(settings):
        log.warning(
            "an earlier version kept its data in %s, which this server does not use: "
            "stop it and start it with RR_DATA_DIR=%s to keep that data",
            legacy,
            legacy,
        )


def ensure_signature_repo(settings: Settings) -> None:
    """A newcomer's first `serve` gets the starter signature repository, so a first request can be built;
    an existing repository (RR_SIGREPO in production) is never touched."""
    repo = settings.signature_repo
    if repo.exists():
        return
    init_sigrepo(path=repo, author="Signature Team <signatures@vendor.example>")
    log.info("no signature repository at %s: created the starter one (set RR_SIGREPO to use yours)", repo)


def ensure_signing_key(settings: Settings) -> None:
    """The first `serve` creates the signing key, and says so: every update client will pin this key."""
    key, created = create_signing_key(data_dir=settings.data_dir)
    if created:
        log.warning(
            "created the release signing key %s (key id %s): back it up; update clients pin it",
            settings.data_dir / KEY_RELPATH,
            key_id(key.public_key()),
        )


def prefect_database_url(app_url: str) -> str:
    """Prefect's own database next to ours (created if missing), as an asyncpg URL.

    Named after the app database (`installation.prefect_database`), so a second installation on the same
    cluster (staging beside production) gets its own Prefect state instead of the first one's runs.
    """
    url = make_url(app_url)
    name = prefect_database(database_name(url))
    db.ensure_database(url.set(database="postgres").render_as_string(hide_password=False), name)
    return url.set(drivername="postgresql+asyncpg", database=name).render_as_string(hide_password=False)


def prefect_environment(settings: Settings, api_url: str) -> dict[str, str]:
    """The children's environment: ours, with the data and config dirs made absolute (children run elsewhere)."""
    return {
        **os.environ,
        "RR_DATA_DIR": str(settings.data_dir.resolve()),
        "RR_CONFIG_DIR": str(settings.config_dir.resolve()),
        "PREFECT_API_URL": api_url,
        "PREFECT_HOME": str((settings.data_dir / "prefect").resolve()),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_RUNNER_POLL_FREQUENCY": "2",
        "PREFECT_LOGGING_LEVEL": os.environ.get("PREFECT_LOGGING_LEVEL", "WARNING"),
    }


def wait_until_healthy(url: str, *, timeout: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with code {process.returncode} before {url} became healthy")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not healthy after {timeout:.0f} s")


def start_prefect_server(
    *, settings: Settings, app_url: str, port: int, log_file: Path
) -> tuple[subprocess.Popen, str]:
    """A Prefect server on our Postgres (its own database); returns the process and its API URL."""
    api_url = f"http://127.0.0.1:{port}/api"
    env = prefect_environment(settings, api_url)
    env["PREFECT_API_DATABASE_CONNECTION_URL"] = prefect_database_url(app_url)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log_file.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    wait_until_healthy(f"{api_url}/health", timeout=90, process=process)
    return process, api_url


def start_flow_runner(*, settings: Settings, api_url: str, log_file: Path) -> subprocess.Popen:
    # heartbeats let the zombie automation mark runs of a killed runner Crashed (every 30 s, the least Prefect accepts)
    env = prefect_environment(settings, api_url) | {"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30"}
    return subprocess.Popen(
        [sys.executable, "-m", "flows.serve"],
        env=env,
        stdout=log_file.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=Path(__file__).resolve().parent.parent,
    )


def _stop(process: subprocess.Popen) -> None:
    """Stop a child and everything it started (its own process group: flow runs of the runner too)."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


def check_notifications(settings: Settings, config: AppConfig) -> None:
    """Refuse to start with a notification setting that is present but wrong (ConfigError), and say once, on
    the terminal, which transports are not configured: their notices are recorded and skipped, never sent."""
    transports = configure(settings, config)
    for warning in unconfigured_warnings(transports):
        log.warning(warning)


def check_mail_intake(settings: Settings, config: AppConfig) -> None:
    """Say once, on the terminal, when the support mailbox is read but nothing checks who wrote a message: with
    `require_authentication = "none"` anyone who puts a contact's address in From files and answers as them."""
    if settings.imap_url and config.intake.email.require_authentication == "none":
        log.warning(
            'mail intake: [email] require_authentication is "none" in %s: anyone who writes a customer '
            "contact's address in From files requests and answers questions as that contact; set it to "
            '"spf_or_dkim" or "dmarc" with trusted_authserv_ids naming your receiving mail servers',
            settings.config_dir / "intake.toml",
        )


def run(*, host: str, port: int) -> None:
    configure_logging()
    # uvicorn re-raises the signal it caught after shutting down; turning SIGTERM into SystemExit lets the
    # children below be stopped on the way out instead of being orphaned.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    settings = get_settings()
    check_notifications(settings, get_config())
    check_mail_intake(settings, get_config())
    announce_database(settings)
    app_url = migrated_url(create=True)
    ensure_signature_repo(settings)
    ensure_signing_key(settings)
    logs = settings.data_dir / "logs"
    with ExitStack() as children:
        if not settings.database_url:
            # runs last: children killed above may have left their pids in the embedded server's handle list,
            # which would keep it from stopping when this process exits
            children.callback(embedded_pg.prune_dead_handles, settings.postgres_dir.resolve())
        api_url = os.environ.get("PREFECT_API_URL")
        if not api_url:
            log.info("starting Prefect server on Postgres (database %s)", prefect_database(database_name(app_url)))
            prefect, api_url = start_prefect_server(
                settings=settings, app_url=app_url, port=settings.prefect_port, log_file=logs / "prefect-server.log"
            )
            children.callback(_stop, prefect)
        runner = start_flow_runner(settings=settings, api_url=api_url, log_file=logs / "flows.log")
        children.callback(_stop, runner)
        log.info("Prefect API %s; flows served; logs in %s", api_url, logs)
        log.info("serving the API on http://%s:%d (API docs at /docs)", host, port)
        uvicorn.run(build_app(), host=host, port=port, log_config=None)
