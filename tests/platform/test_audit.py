"""The audit log: hash-chained, append-only at the database level, linear under concurrency."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from release_requests import db
from release_requests.audit.service import Actor, jsonable, record, verify_chain
from release_requests.config import load_config
from release_requests.customers.schemas import CustomerCreate
from release_requests.customers.service import create_customer
from release_requests.people.service import PersonCreate, create_person
from release_requests.requests import lifecycle, service
from release_requests.requests.models import ReleaseRequest
from release_requests.requests.schemas import Accept, SubmitRequest
from release_requests.workflows import intake
from tests.conftest import REPO, execute_as_superuser

CONFIG = load_config(REPO / "config")


def _seed(sessions):
    with db.transaction(sessions) as s:
        customer = create_customer(
            s,
            actor=Actor.system("tests"),
            data=CustomerCreate(id="acme", name="Acme", tier="enterprise", timezone="Europe/Moscow", country="RU"),
        )
        tam = create_person(s, actor=Actor.system("tests"), data=PersonCreate(name="Tam", role="admin"))
        return customer.id, tam


def test_many_parallel_submitters_keep_one_linear_chain(committed_db):
    engine = db.make_engine(committed_db, pool_size=12)
    sessions = db.make_sessionmaker(engine)
    customer_id, person = _seed(sessions)

    def submit(i: int) -> str:
        with db.transaction(sessions) as s:
            data = SubmitRequest(
                kind="false_positive", severity=1 + i % 4, channel="portal", title=f"FP {i}", customer_id=customer_id
            )
            return service.submit_request(s, actor=person, data=data, config=CONFIG).id

    with ThreadPoolExecutor(max_workers=10) as pool:
        ids = list(pool.map(submit, range(80)))
    assert len(set(ids)) == 80
    with db.transaction(sessions) as s:
        report = verify_chain(s)
        seqs = s.execute(text("SELECT seq FROM audit_events ORDER BY seq")).scalars().all()
        prev_hashes = s.execute(text("SELECT count(DISTINCT prev_hash) FROM audit_events")).scalar()
    assert report.ok, report.problem
    assert seqs == list(range(1, len(seqs) + 1))
    assert prev_hashes == len(seqs)  # no fork: every row has a distinct predecessor
    engine.dispose()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET reason = 'edited' WHERE seq = 1",
        "DELETE FROM audit_events WHERE seq = 1",
        "TRUNCATE audit_events",
    ],
)
def test_app_role_cannot_change_the_log(committed_db, statement):
    engine = db.make_engine(committed_db)
    sessions = db.make_sessionmaker(engine)
    _seed(sessions)
    with pytest.raises(DBAPIError, match="permission denied|append-only"), db.transaction(sessions) as s:
        s.execute(text(statement))
    with pytest.raises(DBAPIError, match="must be owner|permission denied"), db.transaction(sessions) as s:
        s.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
    engine.dispose()


def test_even_superuser_edits_are_refused_by_the_trigger(committed_db):
    engine = db.make_engine(committed_db)
    _seed(db.make_sessionmaker(engine))
    engine.dispose()
    with pytest.raises(DBAPIError, match="append-only"):
        execute_as_superuser(committed_db, "UPDATE audit_events SET reason = 'x' WHERE seq = 1")


@pytest.mark.parametrize(
    ("tamper", "broken"),
    [
        ("UPDATE audit_events SET after = jsonb_set(after, '{tier}', '\"standard\"') WHERE seq = 1", 1),
        ("UPDATE audit_events SET reason = 'backdated', occurred_at = occurred_at - interval '1 day' WHERE seq = 2", 2),
        ("DELETE FROM audit_events WHERE seq = 2", 2),
    ],
)
def test_verify_names_first_row_a_superuser_altered(committed_db, tamper, broken):
    engine = db.make_engine(committed_db)
    sessions = db.make_sessionmaker(engine)
    _seed(sessions)
    with db.transaction(sessions) as s:
        record(s, actor=Actor.system("tests"), action="test.third", entity_type="test", entity_id="3")
        assert verify_chain(s).ok
    execute_as_superuser(
        committed_db,
        f"ALTER TABLE audit_events DISABLE TRIGGER USER; {tamper}; ALTER TABLE audit_events ENABLE TRIGGER USER",
    )
    with db.transaction(sessions) as s:
        report = verify_chain(s)
    assert not report.ok and report.first_broken_seq == broken
    engine.dispose()


def test_replaying_events_gives_the_current_state(session, config):
    system = Actor.system("tests")
    customer = CustomerCreate(id="replay", name="Replay", tier="standard", timezone="UTC", country="DE")
    customer_id = create_customer(session, actor=system, data=customer).id
    duty = create_person(session, actor=system, data=PersonCreate(name="Duty", role="duty_manager"))
    triager = create_person(session, actor=system, data=PersonCreate(name="Triage", role="triage"))
    data = SubmitRequest(kind="false_negative", severity=3, channel="email", title="missed", customer_id=customer_id)
    request = service.submit_request(session, actor=duty, data=data, config=config)
    intake.triage(
        session, actor=triager, request_id=request.id, decision=Accept(decision="accept", severity=2), config=config
    )

    current = session.get(ReleaseRequest, request.id)
    assert current.status == "accepted" and current.severity == 2
    assert lifecycle.replay(session, request_id=request.id) == jsonable(lifecycle.snapshot(current))


def test_secrets_never_reach_the_log(session):
    event = record(
        session,
        actor=Actor.system("t"),
        action="x",
        entity_type="t",
        entity_id="1",
        after={"token": "rr_secret", "nested": {"password": "p"}, "ok": 1},
    )
    assert event.after == {"token": "[redacted]", "nested": {"password": "[redacted]"}, "ok": 1}


def test_issuing_a_token_audits_only_its_prefix(world):
    user = world.user("triage")
    with db.transaction(world.sessions) as s:
        rows = s.execute(text("SELECT after::text FROM audit_events WHERE action = 'token.issued'")).scalars().all()
        stored = s.execute(text("SELECT token_hash FROM api_tokens WHERE person_id = :p"), {"p": user.id}).scalar()
    assert all(user.token not in row for row in rows)
    assert stored != user.token and len(stored) == 64
