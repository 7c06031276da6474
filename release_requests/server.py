"""`relreq serve`: the whole system on one machine; `relreq worker`: the flows on any machine.

`serve`: embedded Postgres (unless RR_DATABASE_URL) with the app migrated; a Prefect server on the same
Postgres in its own database `<app database>_prefect` (unless PREFECT_API_URL points at one); one flow worker
(`flows/worker.py`, see that module) (unless `--no-workers`); the API in `--workers` processes: all of them
forked children. Ctrl-C stops all of it. `worker`: becomes `python -m flows.worker`.
Prefect runs in the children: `serve` only imports it for them to share (`preload`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import importlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn
from sqlalchemy.engine import Engine, make_url

from artifacts.signing import KEY_RELPATH, create_signing_key, key_id
from artifacts.starter import init_sigrepo
from release_requests import db, embedded_pg
from release_requests.api.processes import tcp_listener
from release_requests.config import AppConfig, get_config
from release_requests.errors import ConfigError
from release_requests.installation import database_name, prefect_database
from release_requests.logs import configure_logging
from release_requests.notifications.transports import configure, unconfigured_warnings
from release_requests.runtime import migrated_url
from release_requests.settings import Settings, get_settings

log = logging.getLogger("release_requests.server")


APP_FACTORY = "release_requests.server:build_app"  # for servers that build the app in each process


def build_app(engine: Engine | None = None):
    """The API wired to the configured database (migrated, or `engine`) and validated policy.

    `serve` builds it once, before forking its API processes, which then share it (each with a pool of its
    own: `api_process`); `APP_FACTORY` names it for servers that build it per process.
    """
    # deferred: `relreq worker` never serves the API, and it costs about 60 MiB and half a second to import
    from release_requests.api.app import create_app

    configure_logging()
    engine = engine if engine is not None else db.make_engine(migrated_url())
    return create_app(settings=get_settings(), config=get_config(), sessions=db.make_sessionmaker(engine))


def default_api_workers() -> int:
    """One API process per core: requests are CPU-bound Python, one process runs on one core at a time."""
    return os.cpu_count() or 1


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


# Defaults for flow workers (an operator's own environment wins). Heartbeats every 30 s (the least Prefect
# accepts) let the zombie automation mark the runs of a killed worker Crashed. A worker asks for new segment
# runs every PREFECT_WORKER_QUERY_SECONDS, Prefect's 10 s: a segment follows a human decision, so seconds
# more before it starts matter to nobody, and an idle worker costs the Prefect server six queries a minute.
WORKER_DEFAULTS = {
    "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
}

# The Prefect server `serve` starts runs only what this system uses, and polls no faster than it needs:
# nothing is scheduled (the workers sweep), nothing is paused, no global concurrency leases are taken.
# Automations (the zombie-run one) and events stay on. Two pooled connections suffice for the few requests
# a minute of an idle installation (each idle Postgres backend holds 5–8 MiB); bursts open up to ten more.
PREFECT_SERVER_DEFAULTS = {
    "PREFECT_SERVER_DATABASE_SQLALCHEMY_POOL_SIZE": "2",
    "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_PAUSE_EXPIRATIONS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_REPOSSESSOR_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_LATE_RUNS_LOOP_SECONDS": "60",
    "PREFECT_SERVER_SERVICES_CANCELLATION_CLEANUP_LOOP_SECONDS": "60",
    "PREFECT_SERVER_SERVICES_FOREMAN_LOOP_SECONDS": "60",
    "PREFECT_SERVER_SERVICES_CLEANUP_RECONCILER_LOOP_SECONDS": "60",
}


def absolute_paths(settings: Settings) -> dict[str, str]:
    """The data and config dirs (and RR_SIGREPO when set), absolute: children and flow runs run elsewhere."""
    paths = {"RR_DATA_DIR": settings.data_dir, "RR_CONFIG_DIR": settings.config_dir}
    if settings.sigrepo:
        paths["RR_SIGREPO"] = settings.sigrepo
    return {name: str(path.resolve()) for name, path in paths.items()}


def prefect_environment(settings: Settings, api_url: str) -> dict[str, str]:
    """The children's environment: ours, with paths made absolute, Prefect at `api_url`, worker defaults."""
    return {
        **WORKER_DEFAULTS,
        **os.environ,
        **absolute_paths(settings),
        "PREFECT_API_URL": api_url,
        "PREFECT_HOME": str((settings.data_dir / "prefect").resolve()),
        "PREFECT_LOGGING_LEVEL": os.environ.get("PREFECT_LOGGING_LEVEL", "WARNING"),
    }


def wait_until_healthy(
    url: str, *, timeout: float, process: subprocess.Popen | None = None, pid: int | None = None
) -> None:
    """Until `url` answers 200; RuntimeError after `timeout`, or as soon as `process` (or forked child `pid`) ends."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with code {process.returncode} before {url} became healthy")
        if pid is not None and os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT):  # left to reap
            raise RuntimeError(f"process {pid} ended before {url} became healthy")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not healthy after {timeout:.0f} s")


def prefect_server_environment(settings: Settings, app_url: str, api_url: str) -> dict[str, str]:
    """The Prefect server's environment: the children's, its service defaults, its database (created if missing)."""
    env = {**PREFECT_SERVER_DEFAULTS, **prefect_environment(settings, api_url)}
    env["PREFECT_API_DATABASE_CONNECTION_URL"] = prefect_database_url(app_url)
    return env


# Prefect's own command line, with its background services' queue checked less often (flows/prefect_server.py)
PREFECT_SERVER_MODULE = "flows.prefect_server"
FLOW_WORKER_MODULE = "flows.worker"


def prefect_server_argv(port: int) -> list[str]:
    return ["server", "start", "--host", "127.0.0.1", "--port", str(port)]


def start_prefect_server(
    *, settings: Settings, app_url: str, port: int, log_file: Path
) -> tuple[subprocess.Popen, str]:
    """A Prefect server on our Postgres (its own database) in a process of its own; returns it and its API URL.

    For a Prefect server beside tests; `serve` forks its own (`prefect_server_processes`)."""
    api_url = f"http://127.0.0.1:{port}/api"
    env = prefect_server_environment(settings, app_url, api_url)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [sys.executable, "-m", PREFECT_SERVER_MODULE, *prefect_server_argv(port)],
        env=env,
        stdout=log_file.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    wait_until_healthy(f"{api_url}/health", timeout=90, process=process)
    return process, api_url


# --------------------------------------------------------------------------------------------------
# Forked children: the Prefect server, the API processes and the flow worker
#
# `serve` imports and builds the API (and with it most of the domain) once, imports Prefect's server and the
# flow worker (`preload`), then forks the Prefect server, its API processes and its flow worker: the pages that
# filled stay shared between them (copy-on-write; `gc.freeze` keeps the collector from touching them), where
# spawned processes would each import and build everything again. Measured on an idle `serve`
# (docs/operations.md, "Idle cost"): two spawned API processes hold about 110 MiB each, two forked ones and
# their parent 150 MiB together; forking the Prefect server too, after `preload`, took the Python processes
# from 445 to 407 MiB (with the migration and malloc changes below). Nothing is forked while a thread runs or
# a database connection is open in the parent: the set-up above uses unpooled connections and disposes of them.


M_ARENA_MAX = -8  # glibc's mallopt parameter (malloc.h)


def fewer_malloc_arenas(arenas: int = 2) -> None:
    """Let malloc keep at most `arenas` arenas in this process and the children it forks (they inherit it), as
    MALLOC_ARENA_MAX would: glibc gives threads arenas of their own (up to eight per core), each keeping
    freed memory of its own, and the Prefect server and the flow worker run about ten threads. Measured on an
    idle `serve`: the flow worker's thread arenas 4.9 → 2.2 MiB. An operator's MALLOC_ARENA_MAX wins; on a
    libc without mallopt nothing changes."""
    if "MALLOC_ARENA_MAX" not in os.environ:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).mallopt(M_ARENA_MAX, arenas)


@dataclass
class Child:
    """What a forked child runs (`_forked` ends the process when `main` returns), and what it is called."""

    name: str
    main: Callable[[], None]
    started: float = 0.0  # time.monotonic() of its last start


START_UP_SECONDS = 10  # a child that dies sooner cannot start (a setting, the database): starting it again won't help


class Children:
    """Forked children, started again when one dies on its own; stopped (SIGTERM, then SIGKILL) on the way out.
    `start` returns the child's pid."""

    def __init__(self) -> None:
        self.running: dict[int, Child] = {}

    def start(self, child: Child) -> int:
        child.started = time.monotonic()
        pid = _fork(child)
        self.running[pid] = child
        return pid

    def watch(self, *, also: Children | None = None) -> None:
        """Until a signal ends this process: restart children that die, ours and `also`'s (and say so)."""
        while True:
            time.sleep(1)  # a reap a second costs nothing, and a restart a second later loses nothing
            for group in (self, also) if also is not None else (self,):
                group.restart_ended()

    def restart_ended(self) -> None:
        for pid, child in list(self.running.items()):
            done, status = os.waitpid(pid, os.WNOHANG)
            if not done:
                continue
            del self.running[pid]
            if time.monotonic() - child.started < START_UP_SECONDS:
                raise RuntimeError(f"{child.name} ended at start-up ({_wait_status(status)}); see its log")
            log.warning("%s (pid %d) ended (%s); starting it again", child.name, pid, _wait_status(status))
            self.start(child)

    def stop(self) -> None:
        for pid in self.running:
            _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while self.running and time.monotonic() < deadline:
            for pid in list(self.running):
                if os.waitpid(pid, os.WNOHANG)[0]:
                    del self.running[pid]
            time.sleep(0.1)
        for pid in self.running:
            _signal_group(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        self.running.clear()


PR_SET_PDEATHSIG = 1  # prctl(2): the signal this process gets when its parent ends


def _die_with(parent: int) -> None:
    """End this forked child when `serve` ends, however it ends. A SIGKILLed `serve` (the OOM killer, `kill -9`)
    runs no clean-up: its children, in sessions of their own, would run on unsupervised and keep their ports,
    and the next `serve` would find them taken. Linux sends the child SIGTERM then (elsewhere: nothing changes)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # `serve` ended before the line above took effect
        os._exit(0)


def run_once(child: Child) -> None:
    """Run `child` in a forked child, to its end; RuntimeError if it fails. Stopped with us: a signal that ends
    `serve` meanwhile stops it too (it runs in a process group of its own, out of reach of Ctrl-C)."""
    pid = _fork(child)
    try:
        status = os.waitpid(pid, 0)[1]
    except BaseException:
        _signal_group(pid, signal.SIGTERM)
        os.waitpid(pid, 0)
        raise
    if status:
        raise RuntimeError(f"{child.name} failed ({_wait_status(status)}); see its log")


def _signal_group(pid: int, signum: int) -> None:
    """A child that made its own process group (the flow worker, with its segment runs) gets it group-wide."""
    with contextlib.suppress(ProcessLookupError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, signum)
        else:
            os.kill(pid, signum)


def _wait_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"


_STOPPING = {signal.SIGTERM, signal.SIGINT}


def _fork(child: Child) -> int:
    """Fork a process living `child`'s life (`_forked`); its pid. The signals that stop `serve` wait, blocked,
    while the child still has `serve`'s handlers: one handled there would run `serve`'s clean-ups in the child."""
    parent = os.getpid()
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, _STOPPING)
    pid = os.fork()
    if pid == 0:
        _forked(child, parent=parent, mask=mask)
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    return pid


def _forked(child: Child, *, parent: int, mask: set[signal.Signals]) -> None:
    """The child's whole life: the parent's signal handlers and clean-ups are not its own, so it never returns
    into the parent's code and ends with `os._exit` (no atexit handlers: those would stop the embedded
    Postgres the parent holds)."""
    code = 0
    try:
        for signum in _STOPPING:
            signal.signal(signum, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # a stop that came meanwhile ends this child now
        _die_with(parent)
        child.main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0
    except BaseException:
        log.exception("%s failed", child.name)
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


class QuietServer(uvicorn.Server):
    """uvicorn wakes ten times a second to refresh its Date header and to see whether it should stop; once a
    second does both (the header has a resolution of a second; a stop starts at most a second later). Measured
    on an idle API process: about a tenth of a per cent of this machine less, per process."""

    async def main_loop(self) -> None:
        counter = 0
        while not await self.on_tick(counter):
            counter += 10  # `on_tick` does its once-a-second work when `counter % 10 == 0`
            await asyncio.sleep(1)


def api_process(sock: socket.socket, app, engine: Engine) -> Child:
    """An API process serving `app`, built in the parent before the fork (its routes, models and templates
    are then shared pages), on a connection pool of its own."""

    def main() -> None:
        engine.dispose(close=False)  # connections are never shared between processes: start with none
        QuietServer(uvicorn.Config(app, log_config=None)).run(sockets=[sock])

    return Child("API process", main)


def preload(modules: list[str], *, env: dict[str, str]) -> None:
    """Import the programs the children run (and Prefect, which they use) in `serve` before it forks: the
    children then share those pages instead of importing them each (docs/operations.md, "Idle cost").

    Prefect reads some settings when its modules are imported (its services' intervals are default
    arguments), so they are imported under `env`, the environment of the Prefect server (or, without one,
    of the flow worker; PREFECT_HOME among it: nothing is created in the user's ~/.prefect); each child reads
    Prefect's settings again from its own environment (`_run_program`). The programs are named, not imported
    statically: they live in `flows`, above this layer, and only run in the children.
    """
    ours = dict(os.environ)
    os.environ.update(env)
    try:
        for module in modules:
            importlib.import_module(module)
    finally:
        os.environ.clear()
        os.environ.update(ours)


def _run_program(module: str, argv: list[str], *, env: dict[str, str], log_file: Path, listener: socket.socket) -> None:
    """Run program `module` (its `main()`, as `python -m module ARGV…` would) in this forked child, in a process
    group of its own (stopping it stops what it started), with environment `env`, logging to `log_file`. The
    API's `listener` is closed first: a program left running after `serve` was killed must not hold its port."""
    listener.close()
    os.setsid()
    out = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.environ.clear()
    os.environ.update(env)
    # deferred, and imported already (`preload`): Prefect read its settings in the parent, it reads them again here
    from prefect.context import refresh_global_settings_context

    refresh_global_settings_context()
    sys.argv = [module, *argv]
    importlib.import_module(module).main()


def prefect_server_processes(
    *, env: dict[str, str], port: int, log_file: Path, listener: socket.socket
) -> tuple[Child, Child]:
    """The Prefect server (`python -m flows.prefect_server server start …`) in a forked child, and the child that
    migrates its database first (`run_once`): Prefect's own migration on start loads its ~120 migration scripts
    into the server, for good (measured on an idle `serve`: the server holds 9 MiB less without)."""

    def program(argv: list[str], env: dict[str, str]) -> Callable[[], None]:
        return lambda: _run_program(PREFECT_SERVER_MODULE, argv, env=env, log_file=log_file, listener=listener)

    migrated = {**env, "PREFECT_API_DATABASE_MIGRATE_ON_START": "false"}
    return (
        Child("Prefect database migration", program(["server", "database", "upgrade", "--yes"], env)),
        Child("Prefect server", program(prefect_server_argv(port), migrated)),
    )


def flow_worker_process(*, env: dict[str, str], log_file: Path, listener: socket.socket, limit: int = 4) -> Child:
    """The flow worker (`python -m flows.worker`) in a forked child (stopping it stops its segment runs)."""

    def main() -> None:
        _run_program(FLOW_WORKER_MODULE, ["--limit", str(limit)], env=env, log_file=log_file, listener=listener)

    return Child("flow worker", main)


def run_worker(*, limit: int) -> None:
    """`relreq worker`: become a flow worker (this process is replaced: systemd and signals see one process).

    The worker's code lives in `flows`, above this layer; it is started as a program, never imported.
    """
    api_url = os.environ.get("PREFECT_API_URL")
    if not api_url:
        raise ConfigError(
            "PREFECT_API_URL is not set: point it at the installation's Prefect server (http://HOST:4200/api)"
        )
    env = {**WORKER_DEFAULTS, **os.environ, **absolute_paths(get_settings())}
    os.execve(sys.executable, [sys.executable, "-m", FLOW_WORKER_MODULE, "--limit", str(limit)], env)


def _stop(process: subprocess.Popen) -> None:
    """Stop a process `start_prefect_server` started, and everything it started (its own process group)."""
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


def run(*, host: str, port: int, api_workers: int, flow_worker: bool = True) -> None:
    configure_logging()
    # turning SIGTERM into SystemExit lets the children below be stopped on the way out instead of orphaned
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    settings = get_settings()
    check_notifications(settings, get_config())
    check_mail_intake(settings, get_config())
    announce_database(settings)
    app_url = migrated_url(create=True)
    ensure_signature_repo(settings)
    ensure_signing_key(settings)
    logs = settings.data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        if not settings.database_url:
            # runs last: children killed above may have left their pids in the embedded server's handle list,
            # which would keep it from stopping when this process exits
            stack.callback(embedded_pg.prune_dead_handles, settings.postgres_dir.resolve())
        api_url, server_env = os.environ.get("PREFECT_API_URL"), None
        if not api_url:  # we start the Prefect server
            api_url = f"http://127.0.0.1:{settings.prefect_port}/api"
            server_env = prefect_server_environment(settings, app_url, api_url)
        env = prefect_environment(settings, api_url)
        sock = tcp_listener(uvicorn.Config(APP_FACTORY, host=host, port=port))  # TCP_NODELAY kept: see api/processes
        engine = db.make_engine(app_url)
        app = build_app(engine)  # before forking: the API processes share what building it filled
        # before forking too: the Prefect server and the flow worker share what importing them filled
        preload(
            [
                *(["prefect.server.api.server", PREFECT_SERVER_MODULE] if server_env else []),
                *([FLOW_WORKER_MODULE] if flow_worker else []),
            ],
            env=server_env or env,
        )
        gc.collect()
        gc.freeze()
        fewer_malloc_arenas()
        prefect = Children()  # stopped after the others: the flow worker talks to it on its way out
        stack.callback(prefect.stop)
        if server_env:
            log.info("starting Prefect server on Postgres (database %s)", prefect_database(database_name(app_url)))
            server_log = logs / "prefect-server.log"
            migration, server = prefect_server_processes(
                env=server_env, port=settings.prefect_port, log_file=server_log, listener=sock
            )
            run_once(migration)
            try:
                wait_until_healthy(f"{api_url}/health", timeout=90, pid=prefect.start(server))
            except RuntimeError as exc:
                raise RuntimeError(f"the Prefect server did not start ({exc}); see {server_log}") from None
        children = Children()
        stack.callback(children.stop)
        if flow_worker:
            children.start(flow_worker_process(env=env, log_file=logs / "flows.log", listener=sock))
            log.info("Prefect API %s; a flow worker runs the flows; logs in %s", api_url, logs)
        else:
            log.info("Prefect API %s; no flow worker here (--no-workers): start `relreq worker`s", api_url)
        for _ in range(api_workers):
            children.start(api_process(sock, app, engine))
        log.info(
            "serving the API on http://%s:%d in %d process%s (API docs at /docs)",
            host,
            port,
            api_workers,
            "" if api_workers == 1 else "es",
        )
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: the way out, through the clean-ups above
            children.watch(also=prefect)
