"""What a newcomer meets on the first run: where the data lives, local commands that never create a database,
an empty audit log said plainly, readable logs at a terminal, and a `GET /` that says where the API is."""

from __future__ import annotations

import json
import os
import pty
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import pytest

from release_requests import db, embedded_pg, runtime
from release_requests.settings import Settings, default_data_dir, get_settings
from tests.conftest import REPO, run_relreq

RELREQ = Path(sys.executable).parent / "relreq"


def _env(**values: str) -> dict[str, str]:
    """The environment of a newcomer's shell: no RR_* or Prefect settings of the test session."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RR_", "PREFECT_"))}
    return env | values


# --- where the data and the policy are -------------------------------------------------------------------


def test_defaults_do_not_depend_on_the_current_folder(monkeypatch, tmp_path):
    for name in ("RR_DATA_DIR", "RR_CONFIG_DIR"):
        monkeypatch.delenv(name, raising=False)
    here = Settings()
    monkeypatch.chdir(tmp_path)
    elsewhere = Settings()
    assert (elsewhere.data_dir, elsewhere.config_dir) == (here.data_dir, here.config_dir)
    assert elsewhere.data_dir.is_absolute()
    assert elsewhere.config_dir == REPO / "config"  # the policy shipped with the code
    assert not elsewhere.data_dir.is_relative_to(tmp_path)


def test_default_data_dir_is_the_users_data_home_or_var_lib_for_root(monkeypatch, tmp_path):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_data_dir() == tmp_path / "xdg" / "release-requests"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_data_dir() == tmp_path / "home" / ".local" / "share" / "release-requests"
    # root: not under /root, which the embedded server (its own system user) could not traverse
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert default_data_dir() == Path("/var/lib/release-requests")


# --- local commands find the server's database, and never create one ------------------------------------


@pytest.fixture
def relreq_local(monkeypatch, capsys):
    """`relreq ARGS` in-process with the embedded database of RR_DATA_DIR (no RR_DATABASE_URL)."""

    def run(*args: str, data_dir: Path) -> tuple[int, str, str]:
        return run_relreq(monkeypatch, capsys, args, {"RR_DATABASE_URL": None, "RR_DATA_DIR": str(data_dir)})

    yield run
    get_settings.cache_clear()
    runtime.session_factory.cache_clear()


@pytest.mark.parametrize(
    "args",
    [
        ("audit", "verify"),
        ("audit", "verify", "--json"),
        ("users", "add", "Olga Triage", "--role", "triage"),
        ("customers", "list"),
    ],
)
def test_local_commands_without_a_database_say_where_they_looked_and_create_nothing(relreq_local, tmp_path, args):
    data_dir = tmp_path / "nowhere"
    code, out, err = relreq_local(*args, data_dir=data_dir)
    assert code == 1 and out == ""
    assert err == (
        f"error: no database at {data_dir.resolve()} (RR_DATA_DIR): start `relreq serve` once, "
        "or set RR_DATA_DIR/RR_DATABASE_URL\n"
    )
    assert not data_dir.exists()


def test_a_cluster_without_the_app_database_is_not_completed_behind_the_users_back(pg_server, monkeypatch, tmp_path):
    """A cluster whose first `serve` died before creating the app database: only `serve` finishes the job."""
    monkeypatch.setattr(embedded_pg, "cluster_exists", lambda _pgdata: True)
    monkeypatch.setattr(embedded_pg, "start_server", lambda _pgdata: pg_server)
    settings = Settings(data_dir=tmp_path / "half")
    with pytest.raises(db.NoDatabase, match="no database at"):
        db.resolve_database_url(settings)
    assert not db.database_exists(embedded_pg.server_url(pg_server, "postgres"), db.APP_DATABASE)


def test_an_earlier_data_dir_is_pointed_out(monkeypatch, tmp_path):
    old = tmp_path / ".data"
    (old / "postgres").mkdir(parents=True)
    (old / "postgres" / "PG_VERSION").write_text("18\n")
    monkeypatch.chdir(tmp_path)
    message = db.missing_database_message(Settings(data_dir=tmp_path / "new"))
    assert f"RR_DATA_DIR={old}" in message and "\n" not in message


def test_set_up_creates_the_database_and_local_commands_find_it_from_any_folder():
    """`relreq db upgrade` (like `serve`) creates the embedded database; `audit verify` run from another folder
    uses that one, says plainly that an empty log has nothing to verify, then verifies what was written."""
    # not under pytest's tmp dirs: those are 0700 for root, and the server runs as its own system user
    root = Path(tempfile.mkdtemp(prefix="rr-test-first-run-"))
    try:
        data, here, there = root / "data", root / "here", root / "there"
        here.mkdir()
        there.mkdir()
        env = _env(RR_DATA_DIR=str(data))

        def relreq(*args: str, cwd: Path) -> subprocess.CompletedProcess:
            return subprocess.run([RELREQ, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=180)

        upgraded = relreq("db", "upgrade", cwd=here)
        assert upgraded.returncode == 0, upgraded.stderr
        assert str(data) in upgraded.stdout and embedded_pg.cluster_exists(data / "postgres")

        empty = relreq("audit", "verify", cwd=there)
        assert (empty.returncode, empty.stdout.strip()) == (0, "audit log is empty: nothing to verify"), empty.stderr
        as_json = json.loads(relreq("audit", "verify", "--json", cwd=there).stdout)
        assert as_json["ok"] is True and as_json["empty"] is True and as_json["checked"] == 0

        added = relreq(
            "customers", "add", "--name", "First Bank", "--tier", "standard", "--timezone", "UTC", "--country",
            "DE", cwd=there,
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
        verified = relreq("audit", "verify", "--json", cwd=here)
        body = json.loads(verified.stdout)
        assert body["ok"] is True and body["empty"] is False and body["checked"] >= 1
        assert not (here / ".data").exists() and not (there / ".data").exists()
    finally:
        embedded_pg.prune_dead_handles(root / "data" / "postgres")
        shutil.rmtree(root, ignore_errors=True)


# --- logs ---------------------------------------------------------------------------------------------------

LOG_SCRIPT = """
import logging
from release_requests.logs import configure_logging
configure_logging()
logging.getLogger("release_requests.server").info("serving on %s", "http://x", extra={"rid": "RR-1", "who": "a b"})
logging.getLogger("alembic.runtime.migration").info("Context impl PostgresqlImpl.")
"""


def _log_output(log_format: str | None, *, terminal: bool) -> str:
    env = _env(**({"RR_LOG_FORMAT": log_format} if log_format else {}))
    command = [sys.executable, "-c", LOG_SCRIPT]
    if not terminal:
        done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stderr
    leader, follower = pty.openpty()
    try:
        process = subprocess.Popen(command, env=env, cwd=REPO, stderr=follower, stdout=subprocess.DEVNULL)
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert process.wait(60) == 0
    finally:
        os.close(leader)
    return b"".join(chunks).decode().replace("\r\n", "\n")


TEXT_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} INFO +release_requests\.server: serving on http://x rid=RR-1 who=\"a b\"$"
)


def test_a_terminal_gets_readable_log_lines_without_alembic_chatter():
    lines = _log_output(None, terminal=True).strip().splitlines()
    assert len(lines) == 1 and TEXT_LINE.match(lines[0]), lines


def test_rr_log_format_text_is_readable_anywhere():
    lines = _log_output("text", terminal=False).strip().splitlines()
    assert len(lines) == 1 and TEXT_LINE.match(lines[0]), lines


@pytest.mark.parametrize(("log_format", "terminal"), [(None, False), ("json", True), ("json", False)])
def test_json_stays_json_for_files_and_collectors(log_format, terminal):
    lines = _log_output(log_format, terminal=terminal).strip().splitlines()
    assert len(lines) == 1, lines
    entry = json.loads(lines[0])
    assert (entry["level"], entry["logger"], entry["msg"]) == ("info", "release_requests.server", "serving on http://x")
    assert (entry["rid"], entry["who"]) == ("RR-1", "a b")


# --- GET / ---------------------------------------------------------------------------------------------------

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"


def test_root_sends_a_browser_to_the_console_sign_in(api_url):
    response = httpx.get(api_url + "/", headers={"Accept": BROWSER})
    assert response.status_code == 303 and response.headers["location"] == "/login"


@pytest.mark.parametrize("accept", ["application/json", "*/*", None])
def test_root_answers_json_to_programs(api_url, accept):
    response = httpx.get(api_url + "/", headers={"Accept": accept} if accept else {})
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    links = response.json()["links"]
    assert {link["href"] for link in links.values()} == {"/docs", "/openapi.json", "/api/v1", "/healthz"}
    assert httpx.get(api_url + links["docs"]["href"]).status_code == 200
    assert httpx.get(api_url + links["health"]["href"]).status_code == 200


# --- serve's children, the one wait-until-healthy helper -------------------------------------------------------


def test_serve_hands_its_children_absolute_data_and_config_dirs(monkeypatch, tmp_path):
    from release_requests.server import prefect_environment

    monkeypatch.chdir(tmp_path)
    env = prefect_environment(Settings(data_dir=Path("rel-data"), config_dir=Path("rel-config")), "http://p/api")
    assert env["RR_DATA_DIR"] == str(tmp_path / "rel-data")
    assert env["RR_CONFIG_DIR"] == str(tmp_path / "rel-config")


def test_waiting_for_health_stops_when_the_process_died():
    from release_requests.server import wait_until_healthy

    process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    process.wait(30)
    with pytest.raises(RuntimeError, match="exited with code 3"):
        wait_until_healthy("http://127.0.0.1:9/healthz", timeout=30, process=process)
