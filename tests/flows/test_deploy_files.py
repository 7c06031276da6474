"""The example deployment files (deploy/, docs/operations.md) say what `relreq serve` does for itself: the same
Prefect server settings, and commands the CLI accepts."""

from __future__ import annotations

import configparser
import shlex

import typer.main
import yaml

from release_requests.cli.app import app
from release_requests.server import PREFECT_SERVER_DEFAULTS
from tests.conftest import REPO

DEPLOY = REPO / "deploy"


def accepted(argv: list[str]) -> dict:
    """The parameters `relreq` would run `argv` (after `relreq`) with; fails the test if it would refuse them."""
    group = typer.main.get_command(app)
    command = group.commands[argv[0]]
    return command.make_context(argv[0], argv[1:]).params


def test_the_prefect_server_examples_carry_the_settings_serve_gives_its_own():
    env_file = dict(
        line.split("=", 1) for line in (DEPLOY / "prefect.env.example").read_text().splitlines() if "=" in line
    )
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    for where in (env_file, compose["services"]["prefect"]["environment"]):
        assert {k: where.get(k) for k in PREFECT_SERVER_DEFAULTS} == PREFECT_SERVER_DEFAULTS


def test_the_systemd_units_and_the_compose_file_run_commands_relreq_accepts():
    commands = {}
    for unit in sorted((DEPLOY / "systemd").glob("release-requests-*.service")):
        parser = configparser.ConfigParser(interpolation=None)
        parser.read_string(unit.read_text())
        argv = shlex.split(parser["Service"]["ExecStart"])
        assert argv[0].endswith("/relreq"), unit
        commands[unit.name] = accepted(argv[1:])
    services = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    for name in ("api", "worker"):
        assert services[name]["command"][0] == "relreq"
        commands[name] = accepted(services[name]["command"][1:])
    for api in (commands["release-requests-api.service"], commands["api"]):
        assert api["no_workers"] and api["host"] == "0.0.0.0"  # flow workers run as their own units
    for worker in (commands["release-requests-worker.service"], commands["worker"]):
        assert worker["limit"] >= 1
