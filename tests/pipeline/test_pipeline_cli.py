"""Sign-offs, fixes and closing through `relreq` and the live API: clear 4xx answers, nothing changed."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from release_requests import db
from release_requests.pipeline import service
from release_requests.requests.lifecycle import transition
from release_requests.requests.schemas import Accept
from release_requests.requests.states import Status
from release_requests.workflows import intake
from tests.conftest import SYSTEM, Builder, last_line


@pytest.fixture
def waiting(world, config):
    """A verified request whose `internal` stage waits for sign-off, committed for the live API."""
    with db.transaction(world.sessions) as s:
        b = Builder(s, config)
        customer = b.customer()
        tam = b.person("tam", tam_for=[customer.id])
        request = b.request(by=tam, customer=customer, severity=2, received_at=datetime.now(UTC) - timedelta(minutes=3))
        intake.triage(
            s, actor=b.person("triage"), request_id=request.id, decision=Accept(decision="accept"), config=config
        )
        build = service.latest_build(s, request_id=request.id)
        build.status, build.version, build.passed = "verified", "2026.11.27.9", True
        for target in (Status.building, Status.verifying, Status.awaiting_approval):
            transition(s, actor=SYSTEM, request=request, target=target, action=f"request.{target}")
        service.open_stage(s, request=request, build=build, stage="internal", config=config)
        request_id, customer_id = request.id, customer.id
    return {
        "id": request_id,
        "customer": customer_id,
        "engineer": world.user("build_engineer"),
        "customer_user": world.user("customer", customer_id),
        "stranger": world.user("customer", world.customer()),
    }


def test_approve_and_follow_the_pipeline_from_the_cli(relreq, waiting):
    rid, engineer = waiting["id"], waiting["engineer"]
    code, out, err = relreq("approve", rid, "--stage", "internal", token=engineer.token)
    assert code == 0 and "signed" in out, err
    code, out, _ = relreq("pipeline", rid, "--json", token=waiting["customer_user"].token)
    pipeline = json.loads(out)
    assert pipeline["stage_runs"][0]["signed"] and pipeline["stage_runs"][0]["signoffs"][0]["action"] == "approve"
    code, out, _ = relreq("pipeline", rid, token=engineer.token)
    assert code == 0 and "internal" in out and "approve by" in out


@pytest.mark.parametrize(
    ("args", "who", "message"),
    [
        (("approve", "{id}", "--stage", "canary"), "engineer", "409"),
        (("approve", "{id}", "--stage", "production"), "engineer", "422"),
        (("approve", "{id}", "--stage", "internal"), "customer_user", "403"),
        (("approve", "{id}", "--stage", "internal"), "stranger", "404"),
        (("approve", "{id}", "--stage", "internal", "--override", "x", "--revoke"), "engineer", "at most one"),
        (("approve", "{id}", "--stage", "internal", "--revoke"), "engineer", "no approval"),
        (("fix", "{id}", "--ref", "fix/x"), "engineer", "409"),
        (("fix", "{id}"), "engineer", "exactly one"),
        (("close", "{id}"), "customer_user", "409"),
    ],
)
def test_bad_pipeline_commands_are_refused_and_change_nothing(relreq, waiting, args, who, message):
    before = json.loads(relreq("pipeline", waiting["id"], "--json", token=waiting["engineer"].token)[1])
    code, _, err = relreq(*[a.format(id=waiting["id"]) for a in args], token=waiting[who].token)
    assert code != 0 and message in err and err.strip().count("\n") == 0
    after = json.loads(relreq("pipeline", waiting["id"], "--json", token=waiting["engineer"].token)[1])
    assert after == before


def test_approving_twice_is_a_conflict(relreq, waiting):
    relreq("approve", waiting["id"], "--stage", "internal", token=waiting["engineer"].token)
    code, _, err = relreq("approve", waiting["id"], "--stage", "internal", token=waiting["engineer"].token)
    assert code == 1 and "already approved" in err
    assert last_line(err).startswith("error:")
