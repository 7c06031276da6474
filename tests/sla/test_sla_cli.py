"""SLA, queue, duty and leave through the real CLI entry point and the live API."""

from __future__ import annotations

import json

import pytest

from tests.conftest import last_line


@pytest.fixture
def people(world):
    customer_id = world.customer(timezone="Europe/Moscow", country="RU")
    us_customer = world.customer(timezone="America/New_York", country="US")
    return {
        "customer": customer_id,
        "us_customer": us_customer,
        "tam": world.user("tam", tam_for=[customer_id, us_customer]),
        "duty": world.user("duty_manager"),
        "customer_user": world.user("customer", customer_id),
    }


@pytest.mark.parametrize(
    ("customer_key", "severity", "filed", "due_local", "due_utc"),
    [
        ("customer", 1, "2026-11-28T03:00+03:00", "2026-11-28 03:30 MSK", "2026-11-28T00:30:00+00:00"),
        ("customer", 3, "2026-11-27T17:00+03:00", "2026-11-30 14:00 MSK", "2026-11-30T11:00:00+00:00"),
        ("us_customer", 3, "2027-03-12T15:00-05:00", "2027-03-15 12:00 EDT", "2027-03-15T16:00:00+00:00"),
        ("customer", 4, "2027-01-03T12:00+03:00", "2027-01-11 17:00 MSK", "2027-01-11T14:00:00+00:00"),
    ],
)
def test_sla_due_cases_from_the_service_description(relreq, people, customer_key, severity, filed, due_local, due_utc):
    code, out, err = relreq(
        "sla",
        "due",
        "--customer",
        people[customer_key],
        "--severity",
        str(severity),
        "--at",
        filed,
        "--json",
        token=people["tam"].token,
    )
    assert code == 0, err
    due = json.loads(out)
    assert due["due_at_local"] == due_local
    assert due["due_at"].replace("Z", "+00:00") == due_utc
    code, out, _ = relreq(
        "sla",
        "due",
        "--customer",
        people[customer_key],
        "--severity",
        str(severity),
        "--at",
        filed,
        token=people["tam"].token,
    )
    assert code == 0 and due_local in out and "UTC" in out


def test_sla_due_refuses_a_time_without_zone_and_strangers(relreq, people, world):
    code, _, err = relreq(
        "sla",
        "due",
        "--customer",
        people["customer"],
        "--severity",
        "1",
        "--at",
        "2026-11-28T03:00",
        token=people["tam"].token,
    )
    assert code == 1 and "--at" in err and "time zone" in err
    stranger = world.user("customer", world.customer())
    code, _, err = relreq("sla", "due", "--customer", people["customer"], "--severity", "1", token=stranger.token)
    assert code == 1 and "404" in err


@pytest.mark.parametrize("severity", [1, 2, 3, 4])
@pytest.mark.parametrize(
    ("at", "edge"),
    [
        ("9999-12-31T23:59:00+00:00", "end"),
        ("9999-12-31T18:00:00-05:00", "end"),
        ("0001-01-01T00:00:00+14:00", "start"),
    ],
)
def test_sla_due_at_the_edge_of_the_calendar_is_a_422_for_every_severity(world, people, severity, at, edge):
    """Severities 1-2 (24x7) used to find no due time and answer 500; 3-4 (business hours) overflowed."""
    with world.client(people["tam"]) as c:
        response = c.get("/api/v1/sla/due", params={"customer_id": people["customer"], "severity": severity, "at": at})
        inside = c.get(
            "/api/v1/sla/due",
            params={"customer_id": people["customer"], "severity": severity, "at": "9999-12-01T00:00Z"},
        )
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "invalid_input" and body["field"] == "at"
    assert f"too close to the {edge} of the calendar" in body["message"]
    assert f"severity {severity} request" in body["message"] and "0001-9999" in body["message"]
    assert inside.status_code == 200 and inside.json()["due_at"].startswith("9999-12-0")


def test_respond_severity_and_queue(relreq, people, world):
    tam = people["tam"]
    code, out, _ = relreq(
        "submit",
        "--customer",
        people["customer"],
        "--kind",
        "false-positive",
        "--severity",
        "3",
        "--channel",
        "email",
        "--title",
        "Scanner flags our ERP",
        token=tam.token,
    )
    request_id = last_line(out)
    code, out, _ = relreq("list", "--customer", people["customer"], token=tam.token)
    assert "SLA" in out and "due" in out
    code, out, _ = relreq("show", request_id, token=tam.token)
    assert "SLA" in out and ("on_track" in out or "at_risk" in out)
    code, out, err = relreq("severity", request_id, "--set", "1", "--reason", "ERP is down", token=tam.token)
    assert code == 0 and "severity 1" in out, err
    code, out, _ = relreq("queue", "--json", token=people["duty"].token)
    assert request_id in [r["id"] for r in json.loads(out)]
    code, out, _ = relreq("respond", request_id, "--message", "We reproduced it; fix in progress", token=tam.token)
    assert code == 0 and "met" in out
    code, out, _ = relreq("queue", token=people["customer_user"].token)
    assert code == 1 and "403" in out + _


def test_duty_rotation_commands(relreq, people, world):
    duty = people["duty"]
    other = world.user("duty_manager")
    email = f"{duty.role}-{duty.name.split()[-1]}@example.com"
    code, out, err = relreq(
        "duty",
        "add",
        "--person",
        email,
        "--from",
        "2031-01-05T09:00+03:00",
        "--to",
        "2031-01-12T09:00+03:00",
        "--weeks",
        "2",
        "--json",
        token=duty.token,
    )
    assert code == 0, err
    assert len(json.loads(out)) == 2
    code, _, err = relreq(
        "duty",
        "add",
        "--person",
        email,
        "--from",
        "2031-01-06T09:00+03:00",
        "--to",
        "2031-01-07T09:00+03:00",
        token=duty.token,
    )
    assert code == 1 and "overlaps" in err
    code, _, err = relreq(
        "duty",
        "add",
        "--person",
        email,
        "--from",
        "2031-01-06T09:00",
        "--to",
        "2031-01-07T09:00+03:00",
        token=duty.token,
    )
    assert code == 1 and "--from" in err
    code, out, _ = relreq("duty", "now", "--at", "2031-01-13T12:00+03:00", "--json", token=duty.token)
    assert json.loads(out)["person_id"] == duty.id
    code, out, _ = relreq("duty", "list", "--from", "2031-01-01T00:00Z", "--days", "30", token=duty.token)
    assert code == 0 and out.count(duty.name) == 2
    code, _, err = relreq(
        "duty",
        "add",
        "--person",
        str(other.id),
        "--from",
        "2031-02-01T09:00Z",
        "--to",
        "2031-02-01T10:00Z",
        token=people["tam"].token,
    )
    assert code == 1 and "403" in err
    code, out, _ = relreq(
        "leave",
        "add",
        "--person",
        str(people["tam"].id),
        "--from",
        "2031-03-01",
        "--to",
        "2031-03-10",
        token=people["tam"].token,
    )
    assert code == 0 and "on leave" in out
