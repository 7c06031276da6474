"""The audit log: hash-chained, append-only at the database level, linear under concurrency."""

from __future__ import annotations

import functools
import itertools
import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from psycopg.types.json import Jsonb
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from release_requests import db
from release_requests.audit.models import AuditEvent
from release_requests.audit.service import (
    GENESIS_HASH,
    Actor,
    ChainReport,
    _canonical,
    _row_canonical,
    compute_hash,
    jsonable,
    record,
    record_now,
    verify_chain,
)
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


def test_many_parallel_submitters_keep_one_linear_chain_and_lose_nothing(committed_db):
    """8 threads x 200 submissions: the chain is written at each commit, under a lock held only for that."""
    engine = db.make_engine(committed_db, pool_size=8)
    sessions = db.make_sessionmaker(engine)
    customer_id, person = _seed(sessions)

    def submit(thread: int) -> list[str]:
        filed = []
        for n in range(200):
            with db.transaction(sessions) as s:
                data = SubmitRequest(
                    kind="false_positive",
                    severity=3 + n % 2,
                    channel="portal",
                    title=f"FP {thread}-{n}",
                    customer_id=customer_id,
                )
                filed.append(service.submit_request(s, actor=person, data=data, config=CONFIG).id)
        return filed

    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = [i for filed in pool.map(submit, range(8)) for i in filed]
    assert len(set(ids)) == 1600
    with db.transaction(sessions) as s:
        report = verify_chain(s)
        rows = s.execute(text("SELECT seq, occurred_at FROM audit_events ORDER BY seq")).all()
        prev_hashes = s.execute(text("SELECT count(DISTINCT prev_hash) FROM audit_events")).scalar()
        submitted = s.execute(
            text("SELECT count(DISTINCT request_id) FROM audit_events WHERE action = 'request.submitted'")
        ).scalar()
        stored = s.execute(text("SELECT count(*) FROM release_requests")).scalar()
    assert report.ok, report.problem
    assert [seq for seq, _ in rows] == list(range(1, len(rows) + 1))
    assert prev_hashes == len(rows)  # no fork: every row has a distinct predecessor
    assert all(a < b for (_, a), (_, b) in itertools.pairwise(rows))  # time follows the chain
    assert submitted == stored == 1600
    engine.dispose()


def _event(s, name: str):
    return record(s, actor=Actor.system("tests"), action=f"test.{name}", entity_type="test", entity_id=name)


def _actions(sessions) -> list[str]:
    with db.transaction(sessions) as s:
        return (
            s.execute(text("SELECT action FROM audit_events WHERE entity_type = 'test' ORDER BY seq")).scalars().all()
        )


def test_events_wait_for_the_commit_and_go_with_a_rollback(committed_db):
    engine = db.make_engine(committed_db)
    sessions = db.make_sessionmaker(engine)
    _seed(sessions)
    with db.transaction(sessions) as s:
        first = _event(s, "kept")
        assert first.seq is None and first.occurred_at is None  # chained only when the transaction commits
        try:
            with s.begin_nested():
                _event(s, "undone")
                raise RuntimeError("a SAVEPOINT rolled back")
        except RuntimeError:
            pass
        with s.begin_nested():  # a released SAVEPOINT keeps its events, still for the commit
            _event(s, "released")
        assert s.info["audit.pending"] and first.seq is None
    assert first.seq is not None and first.hash
    with pytest.raises(RuntimeError), db.transaction(sessions) as s:
        _event(s, "rolled-back")
        raise RuntimeError("the whole transaction fails")
    assert _actions(sessions) == ["test.kept", "test.released"]
    with db.transaction(sessions) as s:
        assert verify_chain(s).ok
    engine.dispose()


def test_events_chained_inside_a_savepoint_that_rolls_back_are_chained_again_at_commit(committed_db):
    """A read of the log inside a SAVEPOINT chains what waits; if the SAVEPOINT rolls back, the rows go with it
    but the events recorded before it did happen: they are written at the commit, in their order."""
    engine = db.make_engine(committed_db)
    sessions = db.make_sessionmaker(engine)
    _seed(sessions)
    with db.transaction(sessions) as s:
        outer = _event(s, "before-savepoint")
        try:
            with s.begin_nested():
                _event(s, "inside")
                s.scalar(select(AuditEvent.seq).order_by(AuditEvent.seq.desc()).limit(1))  # chains both
                assert outer.seq is not None
                raise RuntimeError("git refused: the SAVEPOINT rolls back")
        except RuntimeError:
            pass
        assert outer.seq is None  # pending again
        _event(s, "after")
    assert _actions(sessions) == ["test.before-savepoint", "test.after"]
    with db.transaction(sessions) as s:
        assert verify_chain(s).ok
    engine.dispose()


def test_an_abandoned_session_writes_nothing_later(committed_db):
    engine = db.make_engine(committed_db)
    sessions = db.make_sessionmaker(engine)
    _seed(sessions)
    session = sessions()
    _event(session, "recorded-then-rolled-back")  # before any SQL: the event still belongs to a transaction
    session.rollback()
    _event(session, "recorded-then-closed")
    session.close()
    with session.begin():  # the same session, reused
        _event(session, "committed")
    session.close()
    assert _actions(sessions) == ["test.committed"]
    engine.dispose()


def test_a_transaction_reading_the_log_sees_its_own_events_in_order(committed_db):
    engine = db.make_engine(committed_db)
    sessions = db.make_sessionmaker(engine)
    _seed(sessions)
    with db.transaction(sessions) as s:
        _event(s, "one")
        now = record_now(s, actor=Actor.system("tests"), action="test.two", entity_type="test", entity_id="two")
        assert now.seq is not None and now.occurred_at is not None  # for callers that key something on it
        _event(s, "three")
        seen = s.scalars(select(AuditEvent.action).where(AuditEvent.entity_type == "test").order_by(AuditEvent.seq))
        assert list(seen) == ["test.one", "test.two", "test.three"]  # the read chained the third first
        _event(s, "four")
        raw = s.execute(text("SELECT count(*) FROM audit_events WHERE entity_type = 'test'")).scalar()
        assert raw == 4
    assert _actions(sessions) == ["test.one", "test.two", "test.three", "test.four"]
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


# --- verify_chain on long chains: raw rows, orjson, worker processes -------------------------------------

COLUMNS = [c.name for c in AuditEvent.__table__.columns]
JSONB = ("before", "after")
START = datetime(2025, 3, 30, 1, 0, tzinfo=UTC)


def _append(url: str, events: list[dict]) -> None:
    """Append valid events straight into the table as the superuser (COPY: 1,000 rows in ~0.1 s instead of
    ~1 s through `record`), each hashed by `compute_hash` exactly as `record` hashes it."""
    conninfo = url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(conninfo) as conn:
        last = conn.execute("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev = last or (0, GENESIS_HASH)
        with conn.cursor() as cur, cur.copy(f"COPY audit_events ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for spec in events:
                seq += 1
                fields = {"occurred_at": START + timedelta(seconds=seq, microseconds=seq * 7919 % 1_000_000)}
                fields |= {
                    "actor": "system:tests",
                    "action": "test.event",
                    "entity_type": "test",
                    "entity_id": str(seq),
                }
                event = AuditEvent(**fields | spec, seq=seq, prev_hash=prev)
                event.hash = prev = compute_hash(event)
                value = {c: getattr(event, c) for c in COLUMNS}
                copy.write_row([Jsonb(v) if c in JSONB and v is not None else v for c, v in value.items()])


def _both_ways(url: str, **kwargs) -> ChainReport:
    """The report of the in-process pass, after checking that worker processes give exactly the same."""
    engine = db.make_engine(url)
    sessions = db.make_sessionmaker(engine)
    with db.transaction(sessions) as s:
        single = verify_chain(s, workers=1)
    with db.transaction(sessions) as s:
        split = verify_chain(s, workers=2, **kwargs)
    engine.dispose()
    assert split == single
    return single


def _tamper(url: str, sql: str) -> None:
    execute_as_superuser(
        url, f"ALTER TABLE audit_events DISABLE TRIGGER USER; {sql}; ALTER TABLE audit_events ENABLE TRIGGER USER"
    )


def test_a_split_chain_names_the_same_first_broken_row_as_one_pass(committed_db):
    """1,000 events in ranges of 300 (…300, 301–600, 601–900, 901…): breaks inside a range, on its first and
    last rows, across a gap spanning a boundary; each step adds a break before the earlier ones."""
    _append(committed_db, [{"after": {"n": n, "title": "Ложное срабатывание"}} for n in range(1000)])
    calls = []
    assert _both_ways(committed_db, chunk=300, progress=lambda *call: calls.append(call)) == ChainReport(1000)
    assert calls[-1][:2] == (1000, 1000)
    steps = [  # (row, what is done to it: None deletes it, the first problem then)
        (950, "reason = 'edited'", "row 950: content does not match its hash"),
        (901, "prev_hash = repeat('f', 64)", "row 901: prev_hash does not link to row 900"),
        (750, None, "row 750 is missing (next row is 751)"),
        (601, None, "row 601 is missing (next row is 602)"),
        (600, None, "row 600 is missing (next row is 602)"),
        (301, "after = '{\"n\": 300}'", "row 301: content does not match its hash"),
        (300, "actor = 'Mallory'", "row 300: content does not match its hash"),
        (150, "prev_hash = hash", "row 150: prev_hash does not link to row 149"),
        (1, None, "row 1 is missing (next row is 2)"),
    ]
    for seq, change, problem in steps:
        sql = "DELETE FROM audit_events" if change is None else f"UPDATE audit_events SET {change}"
        _tamper(committed_db, f"{sql} WHERE seq = {seq}")
        assert _both_ways(committed_db, chunk=300) == ChainReport(seq - 1, seq, problem), problem


ODD_PAYLOADS = [
    {"title": "Ложное срабатывание · 誤検知 · 🛡️", "quote": 'say "hi" \\ bye', "html": "</script><b>&amp;"},
    {"controls": "".join(map(chr, range(1, 32))) + "\x7f", "separators": "line\u2028para\u2029end", "bom": "\ufeff"},
    {"big": [2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 10**40, -(10**40)], "zero": 0, "neg": -5},
    {"empty": {}, "none": [], "nested": [[[]], [{}], [{"a": [{"b": {}}]}]], "null": None, "flags": [True, False]},
    {"é": 1, "e": 2, "\uffff": 3, "\U0001f600": 4, "Z": 5, "a": 6, "": 7},  # no "\x00": jsonb refuses it
    {"deep": functools.reduce(lambda inner, _: [inner], range(300), {"bottom": 2**70})},
    {"long": "x" * 20_000, "keys": {f"k{n}": n for n in range(200)}},
]


def test_odd_payloads_and_times_hash_as_compute_hash_does(committed_db):
    """Everything `record` can store, and every time Python can hold, hashes the same on the fast path."""
    engine = db.make_engine(committed_db)
    sessions = db.make_sessionmaker(engine)
    with db.transaction(sessions) as s:
        for payload in ODD_PAYLOADS:
            record(
                s,
                actor=Actor('Анна "Q" O\'Neil\n', id=2**31 - 1),
                action="odd",
                entity_type="t",
                entity_id="1",
                before=payload,
                after={"same": payload},
                reason="многострочная\nпричина\t\u2028",
            )
    engine.dispose()
    times = [
        datetime(2025, 1, 1, tzinfo=UTC),  # no microseconds: isoformat omits ".000000"
        datetime(2025, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
        datetime(2025, 6, 30, 23, 59, 59, 999_999, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        datetime(999, 12, 31, 23, 59, 59, 100_000, tzinfo=UTC),
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
    ]
    _append(committed_db, [{"occurred_at": at, "reason": None, "actor_id": None} for at in times])
    total = len(ODD_PAYLOADS) + len(times)
    assert _both_ways(committed_db, chunk=3) == ChainReport(total)

    # A time Python cannot hold (compute_hash used to crash loading it) is named as the broken row.
    _tamper(committed_db, f"UPDATE audit_events SET occurred_at = 'infinity' WHERE seq = {total}")
    assert _both_ways(committed_db, chunk=3) == ChainReport(
        total - 1, total, f"row {total}: content does not match its hash"
    )


def test_a_transaction_that_wrote_is_verified_with_its_own_rows(committed_db):
    engine = db.make_engine(committed_db)
    sessions = db.make_sessionmaker(engine)
    _seed(sessions)
    with db.transaction(sessions) as s:
        committed = s.execute(text("SELECT count(*) FROM audit_events")).scalar_one()
        record(s, actor=Actor.system("tests"), action="test.uncommitted", entity_type="test", entity_id="1")
        assert verify_chain(s, workers=2, chunk=1) == ChainReport(committed + 1)
    engine.dispose()


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 0, -1])
    | st.floats()
    | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=25,
)
optional_text = st.none() | st.text()


@settings(max_examples=600, deadline=None)
@given(
    strings=st.tuples(st.text(), st.text(), st.text(), st.text(), optional_text, optional_text, st.text()),
    ids=st.tuples(st.integers(min_value=1, max_value=2**63 - 1), st.none() | st.integers(-(2**31), 2**31 - 1)),
    before=st.none() | json_values,
    after=st.none() | json_values,
    ascii_only=st.booleans(),
)
def test_fast_canonical_form_is_byte_identical_to_json_dumps(strings, ids, before, after, ascii_only):
    """`_row_canonical` on a raw row equals `_canonical` — the bytes `compute_hash` hashes — on the values
    psycopg would load from it: all of JSON (floats and integers beyond 64 bits too, for a tampered row),
    any text (control characters, U+2028, astral planes; escaped or not in the JSON text)."""
    actor, action, entity_type, entity_id, request_id, reason, prev = strings
    seq, actor_id = ids
    texts = [None if v is None else json.dumps(v, ensure_ascii=ascii_only) for v in (before, after)]
    at = "2025-03-30T01:00:00.000001+00:00"
    row = (seq, at, actor, actor_id, action, entity_type, entity_id, request_id, *texts, reason, prev, "")
    fields = {
        "seq": seq,
        "occurred_at": at,
        "actor": actor,
        "actor_id": actor_id,
        "action": action,
        "entity_type": entity_type,
        "entity_id": entity_id,
        "request_id": request_id,
        "before": None if texts[0] is None else json.loads(texts[0]),
        "after": None if texts[1] is None else json.loads(texts[1]),
        "reason": reason,
        "prev_hash": prev,
    }
    assert _row_canonical(row) == _canonical(fields)


def test_a_commit_with_a_savepoint_still_open_writes_its_events(committed_db):
    """`session.commit()` inside an open SAVEPOINT commits the whole transaction: the SAVEPOINT is released
    first, so the commit's hook finds no SAVEPOINT open and chains everything that waits."""
    engine = db.make_engine(committed_db)
    sessions = db.make_sessionmaker(engine)
    _seed(sessions)
    s = sessions()
    _event(s, "outer")
    s.begin_nested()
    _event(s, "in-open-savepoint")
    s.commit()
    s.close()
    assert _actions(sessions) == ["test.outer", "test.in-open-savepoint"]
    engine.dispose()
