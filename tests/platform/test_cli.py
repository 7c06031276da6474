"""The `relreq` entry point, driven the way a person uses it: local admin commands, then API commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, last_line


def test_newcomer_story_from_the_issue(relreq, tmp_path):
    """Admin creates a customer, a TAM and a customer user; the TAM files a critical phone FP with the
    sample; lists, shows, reads the timeline; triage accepts; the audit log verifies."""
    code, out, _ = relreq(
        "customers",
        "add",
        "--name",
        "Moscow Bank CLI",
        "--tier",
        "enterprise",
        "--timezone",
        "Europe/Moscow",
        "--country",
        "RU",
        "--slack-channel",
        "mb-support",
        "--email",
        "soc@mb.example",
        "--language",
        "ru",
        "--licence",
        "endpoint-agent:>=11,<12",
    )
    assert code == 0
    customer_id = last_line(out)
    assert customer_id == "moscow-bank-cli"
    code, out, _ = relreq(
        "users",
        "add",
        "Tanya TAM",
        "--role",
        "tam",
        "--customer",
        customer_id,
        "--email",
        "tanya.cli@vendor.example",
        "--timezone",
        "Europe/Moscow",
    )
    tam_token = last_line(out)
    assert code == 0 and tam_token.startswith("rr_")
    _, out, _ = relreq("users", "add", "Ivan Customer", "--role", "customer", "--customer", customer_id)
    customer_token = last_line(out)
    _, out, _ = relreq("users", "add", "Olga Triage", "--role", "triage", "--email", "olga.cli@vendor.example")
    triage_token = last_line(out)

    sample = tmp_path / "payroll.exe"
    sample.write_bytes(b"MZ payroll application build 4.2.1")
    code, out, err = relreq(
        "submit",
        "--customer",
        customer_id,
        "--kind",
        "false-positive",
        "--severity",
        "1",
        "--channel",
        "phone",
        "--title",
        "Payroll app quarantined",
        "--detection",
        "Trojan.Win32.Agent",
        "--sample",
        str(sample),
        token=tam_token,
    )
    assert code == 0, err
    request_id = last_line(out)
    assert request_id.startswith("RR-")

    code, out, _ = relreq("list", "--customer", customer_id, token=tam_token)
    assert code == 0 and request_id in out and "1 critical" in out
    code, out, _ = relreq("show", request_id, "--json", token=customer_token)
    shown = json.loads(out)
    assert shown["status"] == "submitted" and shown["samples"][0]["filename"] == "payroll.exe"
    code, out, _ = relreq("triage", request_id, "--accept", token=triage_token)
    assert code == 0 and "accepted" in out
    code, out, _ = relreq("timeline", request_id, "--json", token=customer_token)
    actions = [e["action"] for e in json.loads(out) if e["action"].startswith(("request.", "sample."))]
    assert actions == ["request.submitted", "request.routed", "sample.added", "request.accepted"]
    code, out, _ = relreq("timeline", request_id, token=customer_token)
    assert "request.accepted" in out and "UTC" in out
    code, out, _ = relreq("audit", "verify")
    assert code == 0 and "intact" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("customers", "add", "--name", "X", "--tier", "gold", "--timezone", "UTC", "--country", "DE"), "--tier"),
        (
            ("customers", "add", "--name", "X", "--tier", "standard", "--timezone", "Mars/Base", "--country", "DE"),
            "--timezone",
        ),
        (
            ("customers", "add", "--name", "X", "--tier", "standard", "--timezone", "UTC", "--country", "XX"),
            "--country",
        ),
        (
            (
                "customers",
                "add",
                "--name",
                "X",
                "--tier",
                "standard",
                "--timezone",
                "UTC",
                "--country",
                "DE",
                "--business-hours",
                "mon-fri 18:00-09:00",
            ),
            "end",
        ),
        (
            (
                "customers",
                "add",
                "--name",
                "X",
                "--tier",
                "standard",
                "--timezone",
                "UTC",
                "--country",
                "DE",
                "--email",
                "not-an-address",
            ),
            "--email",
        ),
        (("users", "add", "Z", "--role", "wizard"), "--role"),
        (("users", "add", "Z", "--role", "customer"), "--customer"),
    ],
)
def test_local_commands_refuse_bad_input_in_one_line(relreq, args, message):
    code, out, err = relreq(*args)
    assert code != 0
    assert err.startswith("error:") and err.count("\n") == 1 and message in err


def test_api_commands_report_errors_in_one_line(relreq, world):
    customer_id = world.customer()
    other = world.user("customer", world.customer())
    tam = world.user("tam", tam_for=[customer_id])
    code, _, err = relreq(
        "submit",
        "--customer",
        customer_id,
        "--kind",
        "false-positive",
        "--severity",
        "5",
        "--channel",
        "phone",
        "--title",
        "x",
        token=tam.token,
    )
    assert code == 1 and "severity" in err and err.count("\n") == 1
    code, _, err = relreq(
        "submit",
        "--customer",
        customer_id,
        "--kind",
        "virus",
        "--severity",
        "1",
        "--channel",
        "phone",
        "--title",
        "x",
        token=tam.token,
    )
    assert code == 1 and "--kind" in err
    code, out, _ = relreq(
        "submit",
        "--customer",
        customer_id,
        "--kind",
        "false-negative",
        "--severity",
        "2",
        "--channel",
        "tam",
        "--title",
        "missed",
        token=tam.token,
    )
    request_id = last_line(out)
    code, _, err = relreq("show", request_id, token=other.token)
    assert code == 1 and "404" in err
    code, _, err = relreq("triage", request_id, "--accept", token=tam.token)
    assert code == 1 and "403" in err
    code, _, err = relreq("triage", request_id, "--accept", "--reject", "no", token=tam.token)
    assert code == 1 and "exactly one" in err
    code, _, err = relreq("list")
    assert code == 1 and "RR_TOKEN" in err
    code, _, err = relreq("list", token="rr_wrong")
    assert code == 1 and "401" in err


def test_every_command_has_help():
    from typer.main import get_command

    from release_requests.cli.app import app

    root = get_command(app)
    stack = [((), root)]
    while stack:
        path, command = stack.pop()
        assert command.help or command.short_help, f"relreq {' '.join(path)} has no help"
        for name, sub in getattr(command, "commands", {}).items():
            stack.append(((*path, name), sub))


def test_artifacts_and_sigrepo_commands_are_always_mounted():
    """They used to be mounted only if their import worked, so a broken import hid them without a word."""
    from typer.main import get_command

    from release_requests.cli.app import app
    from release_requests.cli.artifacts import artifacts_app, sigrepo_app

    assert {"artifacts", "sigrepo"} <= set(get_command(app).commands)
    assert artifacts_app.registered_commands and sigrepo_app.registered_commands


def test_installed_console_script_runs(settings, api_url):
    """The real `relreq` executable, as a separate process (no in-process shortcuts)."""
    env = {
        **os.environ,
        "RR_DATABASE_URL": settings.database_url,
        "RR_DATA_DIR": str(settings.data_dir),
        "RR_API_URL": api_url,
    }
    relreq = Path(sys.executable).parent / "relreq"
    verified = subprocess.run(
        [relreq, "audit", "verify", "--json"], env=env, capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["ok"] is True
    helped = subprocess.run([relreq, "triage", "--help"], capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0 and "--needs-info" in helped.stdout
