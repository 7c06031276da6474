"""Stage sign-offs under the policy in stages.toml: roles, separation of duties, revoke, reject, override."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from release_requests.config import SignoffRule
from release_requests.errors import Conflict, Forbidden, NotFound
from release_requests.notifications.models import Notification
from release_requests.pipeline import service
from release_requests.pipeline.models import SegmentTrigger, SignoffEvent
from release_requests.pipeline.policy import SignoffFact, evaluate
from release_requests.pipeline.schemas import SignoffIn
from release_requests.requests.lifecycle import transition
from release_requests.requests.schemas import Accept
from release_requests.requests.states import Status
from release_requests.settings import get_settings
from release_requests.workflows import intake
from tests.conftest import SYSTEM


def test_policy_counts_roles_ignores_barred_and_honours_revoke_and_override():
    rules = [SignoffRule(role="build_engineer", count=1), SignoffRule(role="release_manager", count=1)]
    approve = lambda pid, role: SignoffFact(pid, role, "approve")  # noqa: E731
    assert evaluate(rules, [approve(1, "build_engineer")], barred=set()).missing == ["1 × release_manager"]
    both = [approve(1, "build_engineer"), approve(2, "release_manager")]
    assert evaluate(rules, both, barred=set()).satisfied
    assert not evaluate(rules, both, barred={2}).satisfied
    assert not evaluate(rules, [*both, SignoffFact(2, "release_manager", "revoke")], barred=set()).satisfied
    overridden = evaluate(
        rules, [approve(1, "build_engineer"), SignoffFact(9, "emergency", "override", "outage")], barred=set()
    )
    assert overridden.satisfied and overridden.overridden_by.person_id == 9 and overridden.missing
    rejected = evaluate(rules, [*both, SignoffFact(3, "build_engineer", "reject", "bad")], barred=set())
    assert not rejected.satisfied and rejected.rejected_by.person_id == 3


@pytest.fixture
def staged(build, session, config):
    """A verified FP request whose `internal` stage waits for sign-off (build rows made directly)."""
    customer = build.customer()
    tam = build.person("tam", tam_for=[customer.id])
    triager = build.person("triage")
    request = build.request(by=tam, customer=customer, severity=2, received_at=datetime.now(UTC) - timedelta(minutes=5))
    intake.triage(session, actor=triager, request_id=request.id, decision=Accept(decision="accept"), config=config)
    first = service.latest_build(session, request_id=request.id)
    assert first.status == "waiting_input"  # no stored sample: an engineer must supply the fix
    builder = build.person("build_engineer")
    first.status, first.version, first.passed, first.builder_person_id = "verified", "2026.11.27.1", True, builder.id
    for target in (Status.building, Status.verifying, Status.awaiting_approval):
        transition(session, actor=SYSTEM, request=request, target=target, action=f"request.{target}")
    service.open_stage(session, request=request, build=first, stage="internal", config=config)
    return {"request": request, "build": first, "tam": tam, "builder": builder, "customer": customer}


def sign(session, config, person, request, stage="internal", decision="approve", reason=None):
    return service.sign(
        session,
        actor=person,
        request_id=request.id,
        config=config,
        repo_path=get_settings().signature_repo,
        data=SignoffIn(stage=stage, decision=decision, reason=reason),
    )


def publish_triggers(session, request):
    return session.scalars(
        select(SegmentTrigger.step).where(
            SegmentTrigger.request_id == request.id, SegmentTrigger.step.like("publish:%")
        )
    ).all()


def test_separation_of_duties_requester_tam_and_builder_are_refused(build, session, config, staged):
    request = staged["request"]
    tam_engineer = staged["tam"]  # the requester, and the customer's TAM
    with pytest.raises(Forbidden, match="role 'tam' may not sign off release stages"):
        sign(session, config, tam_engineer, request)
    with pytest.raises(Forbidden, match="who built it"):
        sign(session, config, staged["builder"], request)
    requester = build.person("build_engineer")
    request.submitted_by_id = requester.id  # a build engineer who filed it himself
    with pytest.raises(Forbidden, match="the requester"):
        sign(session, config, requester, request)


def test_signoff_unblocks_the_stage_and_revocation_blocks_it_again(build, session, config, staged):
    request = staged["request"]
    engineer = build.person("build_engineer")
    evaluation = sign(session, config, engineer, request)
    assert evaluation.satisfied
    assert publish_triggers(session, request) == [f"publish:internal:{staged['build'].id}"]
    with pytest.raises(Conflict, match="already approved"):
        sign(session, config, engineer, request)
    revoked = sign(session, config, engineer, request, decision="revoke")
    assert not revoked.satisfied and revoked.missing == ["1 × build_engineer"]
    with pytest.raises(Conflict, match="no approval"):
        sign(session, config, engineer, request, decision="revoke")
    rows = session.scalars(select(SignoffEvent.action).where(SignoffEvent.request_id == request.id)).all()
    assert rows == ["approve", "revoke"]  # history kept: granted, then revoked — never edited


def test_a_signoff_on_a_build_that_changed_since_the_signer_looked_is_refused(build, session, config, staged):
    """A decision naming the commit the signer saw applies to that build only: after a rebuild or a rebase the
    waiting build is another one, and approving it blindly would sign a diff nobody looked at."""
    request, waiting = staged["request"], staged["build"]
    looked_at, now = "1" * 40, "2" * 40
    waiting.commit = now  # rebuilt (here: rebased on a moved release line) after the page was loaded
    engineer = build.person("build_engineer")
    for decision, reason in (("approve", None), ("reject", "breaks payroll tests")):
        with pytest.raises(Conflict, match=f"changed since you looked: it is now commit {now[:12]}.*reload"):
            service.sign(
                session,
                actor=engineer,
                request_id=request.id,
                config=config,
                repo_path=get_settings().signature_repo,
                data=SignoffIn(stage="internal", decision=decision, reason=reason, commit=looked_at),
            )
    assert session.scalars(select(SignoffEvent).where(SignoffEvent.request_id == request.id)).all() == []
    assert publish_triggers(session, request) == [] and request.status == Status.awaiting_approval

    evaluation = service.sign(  # the build on screen (abbreviated as the panel shows it) is the one waiting
        session,
        actor=engineer,
        request_id=request.id,
        config=config,
        repo_path=get_settings().signature_repo,
        data=SignoffIn(stage="internal", commit=now[:12].upper()),
    )
    assert evaluation.satisfied
    assert session.scalars(select(SignoffEvent.action).where(SignoffEvent.request_id == request.id)).all() == [
        "approve"
    ]
    assert publish_triggers(session, request) == [f"publish:internal:{waiting.id}"]


def test_signoff_rows_cannot_be_edited(build, session, config, staged):
    sign(session, config, build.person("build_engineer"), staged["request"])
    with pytest.raises(DBAPIError, match="permission denied|append-only"), session.begin_nested():
        session.execute(text("UPDATE signoff_events SET action = 'reject'"))


def test_bad_signoffs_change_nothing(build, session, config, staged):
    request = staged["request"]
    engineer, manager = build.person("build_engineer"), build.person("release_manager")
    with pytest.raises(Conflict, match="'canary' is not waiting"):
        sign(session, config, manager, request, stage="canary")
    with pytest.raises(Forbidden, match="role 'triage' may not sign off release stages"):
        sign(session, config, build.person("triage"), request)
    with pytest.raises(Forbidden, match="does not sign stage 'internal'"):  # the table lets it sign, the stage not
        sign(session, config, manager, request)
    with pytest.raises(Forbidden, match="may not override"):
        sign(session, config, engineer, request, decision="override", reason="hurry")
    with pytest.raises(ValueError, match="written reason"):
        SignoffIn(stage="internal", decision="override")
    with pytest.raises(ValueError):
        SignoffIn(stage="production")
    other_customer_user = build.person("customer", customer_id=build.customer().id)
    with pytest.raises(NotFound):
        sign(session, config, other_customer_user, request)
    assert session.scalars(select(SignoffEvent).where(SignoffEvent.request_id == request.id)).all() == []


def test_rejection_stops_the_pipeline_and_tells_the_customer(build, session, config, staged):
    request = staged["request"]
    sign(session, config, build.person("build_engineer"), request, decision="reject", reason="breaks payroll tests")
    assert request.status == Status.failed
    events = session.scalars(
        select(Notification.event).where(Notification.request_id == request.id, Notification.audience == "customer")
    ).all()
    assert "release.rejected" in events


def test_emergency_override_is_audited_and_announced(build, session, config, staged):
    request = staged["request"]
    emergency = build.person("emergency")
    evaluation = sign(session, config, emergency, request, decision="override", reason="bank outage, CTO approved")
    assert evaluation.satisfied and evaluation.overridden_by is not None
    announced = session.scalars(
        select(Notification.event).where(
            Notification.request_id == request.id, Notification.event == "signoff.override"
        )
    ).all()
    assert announced and publish_triggers(session, request)


def test_provide_fix_validation(build, session, config, staged):
    from release_requests.pipeline.schemas import FixInput

    engineer = build.person("build_engineer")
    with pytest.raises(ValueError, match="needs rule_text"):
        FixInput(type="rule")
    with pytest.raises(Conflict, match="awaiting_approval"):
        service.provide_fix(
            session, actor=engineer, request_id=staged["request"].id, data=FixInput(type="ref", ref="x")
        )
    with pytest.raises(Forbidden):
        service.provide_fix(
            session, actor=staged["tam"], request_id=staged["request"].id, data=FixInput(type="ref", ref="x")
        )
    customer_user = build.person("customer", customer_id=staged["customer"].id)
    with pytest.raises(Forbidden):
        service.provide_fix(
            session, actor=customer_user, request_id=staged["request"].id, data=FixInput(type="allowlist")
        )


def test_soak_time_holds_a_signed_stage_until_it_elapses(build, session, config, staged):
    from release_requests.clock import db_now
    from release_requests.pipeline.models import StageRun
    from release_requests.pipeline.triggers import stages_ready_by_time

    request, first = staged["request"], staged["build"]
    internal = session.scalar(select(StageRun).where(StageRun.build_id == first.id, StageRun.stage == "internal"))
    internal.status, internal.published_at = "published", db_now(session)
    service.open_stage(session, request=request, build=first, stage="canary", config=config)
    sign(session, config, build.person("build_engineer"), request, stage="canary")
    evaluation = sign(session, config, build.person("release_manager"), request, stage="canary")
    assert evaluation.satisfied and publish_triggers(session, request) == []  # severity 2: 15 min of soak first
    assert stages_ready_by_time(session, config=config) == []
    internal.published_at = db_now(session) - timedelta(minutes=16)
    assert stages_ready_by_time(session, config=config) == [f"{request.id}:canary"]
    assert publish_triggers(session, request) == [f"publish:canary:{first.id}"]
    assert stages_ready_by_time(session, config=config) == []  # once
