"""One customer's requests, filed and handled through the real API for the report: met, answered late, paused
by needs-info then answered, severity raised mid-way, withdrawn, still running, never answered — and one
received before the period (answered in it, long after its due time), one of another customer. Built once per
session (the data is committed and the customer's own), with the timelines the expectations are computed from
by hand."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.api.conftest import cast  # noqa: F401  (a customer, its TAM and users, other staff: the settings tests)
from tests.conftest import User, World
from tests.pipeline.conftest import staff, world_pipeline  # noqa: F401  (the release test drives the pipeline)

ZONE = ZoneInfo("Europe/Moscow")


@dataclass
class Story:
    customer_id: str
    other_customer_id: str
    tam: User
    other_tam: User
    triage: User
    admin: User
    customer_user: User
    other_customer_user: User
    ids: dict[str, str]  # letter → request id
    received: dict[str, datetime]
    events: dict[str, list[tuple[datetime, str]]] = field(default_factory=dict)  # letter → (at, action), oldest first
    owners: dict[str, str | None] = field(default_factory=dict)
    start: date = date.min
    end: date = date.max
    as_of: datetime = datetime.min

    def at(self, letter: str, action: str) -> datetime:
        return next(at for at, a in self.events[letter] if a == action)

    @property
    def params(self) -> dict:
        return {
            "customer_id": self.customer_id,
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "as_of": self.as_of.isoformat(),
        }


def _call(world: World, user: User, method: str, path: str, **body) -> dict:
    with world.client(user) as c:
        response = c.request(method, path, json=body)
    assert response.status_code in (200, 201), response.text
    return response.json()


@pytest.fixture(scope="session")
def story(world: World) -> Story:
    customer_id, other = world.customer(), world.customer()
    s = Story(
        customer_id=customer_id,
        other_customer_id=other,
        tam=world.user("tam", tam_for=[customer_id]),
        other_tam=world.user("tam", tam_for=[other]),
        triage=world.user("triage"),
        admin=world.user("admin"),
        customer_user=world.user("customer", customer_id),
        other_customer_user=world.user("customer", other),
        ids={},
        received={},
    )
    now = datetime.now(UTC)

    def file(letter: str, user: User, severity: int, ago: timedelta | None, **extra) -> str:
        body = {
            "customer_id": s.customer_id,
            "kind": "false_positive",
            "severity": severity,
            "channel": "phone" if ago is not None else "portal",
            "title": f"Request {letter}: <b>payroll</b> flagged",
            **({"received_at": (now - ago).isoformat()} if ago is not None else {}),
            **extra,
        }
        created = _call(world, user, "POST", "/api/v1/requests", **body)
        s.ids[letter], s.received[letter] = created["id"], datetime.fromisoformat(created["received_at"])
        s.owners[letter] = created["owner"]
        return created["id"]

    def act(user: User, letter: str, path: str, **body) -> None:
        _call(world, user, "POST", f"/api/v1/requests/{s.ids[letter]}/{path}", **body)

    file("A", s.tam, 1, timedelta(minutes=10))
    act(s.triage, "A", "triage", decision="accept")
    file("B", s.tam, 1, timedelta(hours=2))
    act(s.tam, "B", "responses", message="We are on it")
    file("C", s.tam, 2, timedelta(hours=1))
    act(s.triage, "C", "triage", decision="needs_info", question="Which version of payroll?")
    act(s.customer_user, "C", "answers", message="4.2.1")
    act(s.triage, "C", "triage", decision="accept")
    file("D", s.tam, 2, timedelta(minutes=40))
    act(s.tam, "D", "severity", severity=1, reason="the payroll run is blocked")
    act(s.tam, "D", "responses", message="Raised to critical, we are on it")
    file("E", s.customer_user, 3, None, kind="false_negative")
    act(s.customer_user, "E", "cancel", reason="found the cause ourselves")
    file("F", s.customer_user, 4, None, kind="private_hotfix", product="endpoint-agent", product_version="11.2.0")
    file("G", s.tam, 1, timedelta(hours=3))
    file("X", s.tam, 2, timedelta(days=6, hours=12))  # received before the period
    act(s.tam, "X", "responses", message="Looking")
    s.ids["Y"] = _call(
        world,
        s.other_tam,
        "POST",
        "/api/v1/requests",
        customer_id=other,
        kind="false_positive",
        severity=1,
        channel="phone",
        title="Another customer's request",
    )["id"]
    s.as_of = datetime.now(UTC)
    for letter, request_id in s.ids.items():
        with world.client(s.admin) as c:
            timeline = c.get(f"/api/v1/requests/{request_id}/timeline").json()
        s.events[letter] = [(datetime.fromisoformat(e["at"]), e["action"]) for e in timeline]
    today = s.as_of.astimezone(ZONE).date()
    s.start, s.end = today - timedelta(days=5), today
    return s


def minutes(delta: timedelta) -> float:
    """Minutes on a 24x7 clock as the report gives them: whole seconds, then one decimal."""
    return round(int(delta.total_seconds()) / 60, 1)


def check_figures(report: dict, s: Story) -> None:
    """Every figure of the story's report, against expectations computed here by hand from the timelines."""
    ids = s.ids
    rows = {r["request_id"]: r for r in report["requests"]}
    assert report["customer_id"] == s.customer_id and report["timezone"] == "Europe/Moscow"
    assert (report["period"]["start"], report["period"]["end"]) == (s.start.isoformat(), s.end.isoformat())
    # X was received (and breached) before the period, but answered in it: it feeds the response times only.
    # Y is another customer's.
    assert set(rows) == {ids[x] for x in "ABCDEFGX"}
    feeds = {x: (rows[ids[x]]["received_in_period"], rows[ids[x]]["decided_in_period"]) for x in "ABCDEFGX"}
    assert feeds == {**dict.fromkeys("ABCDEG", (True, True)), "F": (True, False), "X": (False, False)}
    assert [x for x in "ABCDEFGX" if rows[ids[x]]["responded_in_period"]] == list("ABCDX")
    assert report["requests_total"] == 7
    assert report["by_severity"] == {"1": 4, "2": 1, "3": 1, "4": 1}  # D counts under its final severity
    assert report["by_kind"] == {"false_positive": 5, "false_negative": 1, "private_hotfix": 1}
    assert report["by_channel"] == {"portal": 2, "phone": 5, "email": 0, "tam": 0}

    outcomes = {x: rows[ids[x]]["sla"] for x in "ABCDEFG"}
    assert outcomes == {
        "A": "met",
        "B": "breached",  # answered 1 h 30 min late
        "C": "met",  # paused by needs-info, answered, accepted
        "D": "breached",  # raised 2 → 1 after its 30 min had passed
        "E": "withdrawn",  # cancelled by the customer before any answer of ours: not met, not breached
        "F": "running",
        "G": "breached",  # nobody answered
    }
    assert (report["sla_met"], report["sla_breached"], report["sla_running"], report["sla_withdrawn"]) == (2, 3, 1, 1)
    assert report["sla_attainment_pct"] == 40.0  # 2 ÷ (2 + 3)
    per = {
        x["severity"]: (x["met"], x["breached"], x["running"], x["withdrawn"], x["attainment_pct"])
        for x in report["sla_by_severity"]
    }
    assert per == {1: (1, 3, 0, 0, 25.0), 2: (1, 0, 0, 0, 100.0), 3: (0, 0, 0, 1, None), 4: (0, 0, 1, 0, None)}
    assert [x["target_minutes"] for x in report["sla_by_severity"]] == [30, 240, 360, 480]

    pause = s.at("C", "request.answered") - s.at("C", "request.needs_info")
    first = {
        "A": minutes(s.at("A", "request.accepted") - s.received["A"]),
        "B": minutes(s.at("B", "request.responded") - s.received["B"]),
        "C": minutes(s.at("C", "request.accepted") - s.received["C"] - pause),
        "D": minutes(s.at("D", "request.responded") - s.received["D"]),
        "X": minutes(s.at("X", "request.responded") - s.received["X"]),  # 6 d 12 h: late, but answered now
    }
    assert {x: rows[ids[x]]["first_response_minutes"] for x in "ABCDEFGX"} == {**dict.fromkeys("EFG"), **first}
    assert 9.9 < first["A"] < 11 and 119.9 < first["B"] < 121  # what the story meant to build
    ordered = sorted(first.values())  # A ≈ 10, D ≈ 40, C ≈ 60, B ≈ 120, X ≈ 9,360
    assert report["first_response_p50_minutes"] == ordered[2] == first["C"]  # nearest rank: ⌈0.5 × 5⌉ = 3rd
    assert report["first_response_p90_minutes"] == ordered[4] == first["X"]  # ⌈0.9 × 5⌉ = 5th
    assert rows[ids["C"]]["paused_minutes"] == round(int(pause.total_seconds()) / 60, 1)
    assert rows[ids["D"]]["severity"] == 1 and rows[ids["D"]]["severity_changes"] == 1
    assert rows[ids["E"]]["status"] == "cancelled" and rows[ids["A"]]["status"] == "accepted"

    def due(letter: str) -> datetime:
        return s.received[letter] + timedelta(minutes=30)

    breaches = {b["request_id"]: b for b in report["breaches"]}
    assert list(breaches) == [ids["G"], ids["B"], ids["D"]]  # by due time
    b, d, g = breaches[ids["B"]], breaches[ids["D"]], breaches[ids["G"]]
    assert datetime.fromisoformat(b["due_at"]) == due("B") and datetime.fromisoformat(g["due_at"]) == due("G")
    assert (b["responded"], b["reason"]) == (True, "answered 1 h 30 min after the due time")
    assert datetime.fromisoformat(b["responded_at"]) == s.at("B", "request.responded")
    assert d["reason"] == (
        "answered 10 min after the due time; severity changed 2 → 1: the 30 min target counts from receipt"
    )
    assert (d["severity_path"], d["severity"]) == ([2, 1], 1)
    assert (g["responded"], g["reason"]) == (False, "no qualified response yet (overdue by 2 h 30 min)")
    assert g["late_minutes"] == round((s.as_of - due("G")).total_seconds() / 60, 1)

    decided = {  # met when answered, breached when it fell due (E, withdrawn, is in no week)
        ("met", s.at("A", "request.accepted")),
        ("met", s.at("C", "request.accepted")),
        ("breached", due("B")),
        ("breached", due("D")),
        ("breached", due("G")),
    }
    assert datetime.fromisoformat(rows[ids["E"]]["decided_at"]) == s.at("E", "request.cancelled")
    expected: dict[str, list[int]] = {}
    for outcome, when in decided:
        day = when.astimezone(ZONE).date()
        counts = expected.setdefault((day - timedelta(days=day.weekday())).isoformat(), [0, 0])
        counts[outcome == "breached"] += 1
    weeks = {w["week_start"]: [w["met"], w["breached"]] for w in report["weekly"]}
    assert {k: v for k, v in weeks.items() if v != [0, 0]} == expected
    assert report["weekly"][0]["week_start"] == (s.start - timedelta(days=s.start.weekday())).isoformat()
    assert report["weekly"][-1]["week_start"] == (s.end - timedelta(days=s.end.weekday())).isoformat()
    assert report["releases"] == [] and report["healthchecks"] == [] and report["notes"] == []
