"""The SLA watcher records each crossing exactly once, re-routes away from absent owners, queues notices."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from release_requests import db
from release_requests.audit.service import timeline, verify_chain
from release_requests.notifications.models import Notification
from release_requests.sla.models import SlaCrossing
from release_requests.workflows.sla_watch import watch
from tests.conftest import Builder


@pytest.fixture
def sessions(committed_db):
    engine = db.make_engine(committed_db, pool_size=6)
    yield db.make_sessionmaker(engine)
    engine.dispose()


def test_each_threshold_is_recorded_once_even_with_overlapping_watchers(sessions, config):
    now = datetime.now(UTC)
    with db.transaction(sessions) as s:
        b = Builder(s, config)
        customer = b.customer()
        duty = b.person("duty_manager", slack_user_id="UDUTY01")
        b.shift(duty, now - timedelta(hours=2), now + timedelta(hours=2))
        request = b.request(by=duty, customer=customer, severity=1, received_at=now - timedelta(minutes=20))
        request_id = request.id

    first = watch(sessions, config=config, now=now)
    assert [(c.request_id, c.threshold) for c in first] == [(request_id, "50%")]
    assert watch(sessions, config=config, now=now) == []

    later = now + timedelta(minutes=15)  # 35 minutes after filing: 80 % and the breach, by several watchers at once
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: watch(sessions, config=config, now=later), range(4)))
    recorded = sorted(c.threshold for result in results for c in result)
    assert recorded == ["80%", "breach"]

    with db.transaction(sessions) as s:
        crossings = s.execute(
            select(SlaCrossing.threshold, SlaCrossing.crossed_at)
            .where(SlaCrossing.request_id == request_id)
            .order_by(SlaCrossing.crossed_at)
        ).all()
        events = [e for e in timeline(s, request_id=request_id) if e.action.startswith("sla.")]
        notices = s.execute(
            select(Notification.event, func.count())
            .where(Notification.request_id == request_id)
            .group_by(Notification.event)
        ).all()
        assert verify_chain(s).ok
    received = now - timedelta(minutes=20)
    assert [(t, c) for t, c in crossings] == [
        ("50%", received + timedelta(minutes=15)),
        ("80%", received + timedelta(minutes=24)),
        ("breach", received + timedelta(minutes=30)),
    ]
    assert [e.action for e in events] == ["sla.warning", "sla.warning", "sla.breached"]
    counts = dict(notices)
    assert counts["sla.warning"] >= 2 and counts["sla.breach"] >= 2  # owner + internal channel (+ duty manager)


def test_watcher_reroutes_when_the_owner_is_no_longer_on_duty(sessions, config):
    now = datetime.now(UTC)
    with db.transaction(sessions) as s:
        b = Builder(s, config)
        customer = b.customer()
        b.person("tam", tam_for=[customer.id], working_hours="sat 03:00-03:01")  # practically never at work
        night, day = b.person("duty_manager"), b.person("duty_manager")
        b.shift(night, now - timedelta(hours=3), now - timedelta(minutes=5))
        b.shift(day, now - timedelta(minutes=5), now + timedelta(hours=8))
        request = b.request(by=night, customer=customer, severity=1, received_at=now - timedelta(minutes=20))
        assert request.owner_id == night.id
        request_id, day_id, day_name = request.id, day.id, day.name

    crossings = watch(sessions, config=config, now=now)
    assert crossings[0].rerouted_to == day_name
    with db.transaction(sessions) as s:
        from release_requests.requests.models import ReleaseRequest

        assert s.get(ReleaseRequest, request_id).owner_id == day_id
        rerouted = next(e for e in timeline(s, request_id=request_id) if e.action == "request.rerouted")
        assert "not on a duty shift" in rerouted.reason and f"on duty: {day_name}" in rerouted.reason


def test_paused_and_answered_requests_are_left_alone(sessions, config):
    now = datetime.now(UTC)
    with db.transaction(sessions) as s:
        b = Builder(s, config)
        customer = b.customer()
        tam = b.person("tam", tam_for=[customer.id])
        request = b.request(by=tam, customer=customer, severity=1, received_at=now - timedelta(hours=1))
        from release_requests.requests.schemas import Respond
        from release_requests.requests.service import respond

        respond(s, actor=tam, request_id=request.id, data=Respond(message="Looking at it now"), config=config)
    assert watch(sessions, config=config, now=now) == []
