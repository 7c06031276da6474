"""Paging over the real API, the `relreq` command and the real transports: a phone call from 02:00 on a Sunday,
logged later, pages the manager on duty by Slack DM and e-mail; acknowledging from the CLI and the API; what a
customer may see; `relreq duty check`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest

from devservers import LocalSlack, LocalSmtp
from release_requests import db
from release_requests.api.app import create_app
from release_requests.notifications.delivery import Deliverer
from release_requests.notifications.transports import SlackTransport, SmtpTransport
from release_requests.settings import Settings
from tests.conftest import REPO, run_relreq, serve_app
from tests.paging.conftest import INTERNAL, a_weekday_but, last_sunday_2am, with_head


@pytest.fixture
def api(committed_db, engine, scene, tmp_path) -> Iterator[str]:
    """The real API over the test's own database; the head of support is an admin (configured)."""
    head = scene.person("admin")
    scene.head = head
    scene.config = with_head(scene.config, head.email)
    settings = Settings(database_url=committed_db, data_dir=tmp_path, config_dir=REPO / "config")
    with serve_app(create_app(settings=settings, config=scene.config, sessions=db.make_sessionmaker(engine))) as url:
        yield url


@pytest.fixture
def relreq(monkeypatch, capsys, api, committed_db, tmp_path):
    def run(*args: str, token: str) -> tuple[int, str, str]:
        env = {"RR_DATABASE_URL": committed_db, "RR_DATA_DIR": str(tmp_path), "RR_API_URL": api, "RR_TOKEN": token}
        return run_relreq(monkeypatch, capsys, args, env)

    return run


def deliver_all(engine, config, slack: LocalSlack, smtp: LocalSmtp) -> None:
    deliverer = Deliverer(
        engine=engine,
        config=config,
        transports=[
            SlackTransport(token=slack.token, base_url=slack.base_url, timeout=5),
            SmtpTransport(smtp.url, sender=config.notifications.email.from_address, timeout=5),
        ],
        lease_seconds=5,
        backoff_seconds=[0.2],
    )
    deadline = time.monotonic() + 10
    while (due := deliverer.seconds_until_due()) is not None:
        assert time.monotonic() < deadline, "outbox did not drain"
        deliverer.deliver_due()
        time.sleep(min(due, 0.1))


def test_a_call_at_2am_on_sunday_pages_the_manager_on_duty_who_acknowledges_from_the_cli(scene, api, engine, relreq):
    customer = scene.customer(timezone="Europe/Moscow")
    called_at = last_sunday_2am("Europe/Moscow")
    off = a_weekday_but(called_at, datetime.now(ZoneInfo("Europe/Moscow")))  # the TAM is off then and now
    tam = scene.person("tam", tam_for=(customer,), timezone="Europe/Moscow", working_hours=f"{off} 09:00-18:00")
    on_duty = scene.person("duty_manager")
    scene.shift(on_duty, called_at - timedelta(hours=2), scene.now() + timedelta(hours=6))  # then and now
    body = {
        "customer_id": customer,
        "kind": "false_positive",
        "severity": 1,
        "channel": "phone",
        "title": "Payroll <!channel> flagged",
        "caller_name": "Ivan Petrov",
        "callback_number": "+7 495 123-45-67",
        "received_at": called_at.isoformat(),
    }
    with httpx.Client(base_url=api, headers=tam.headers, timeout=30) as client:
        filed = client.post("/api/v1/requests", json=body)
        assert filed.status_code == 201, filed.text
        request_id = filed.json()["id"]
        page = client.get(f"/api/v1/requests/{request_id}/page").json()
    assert page["status"] == "paging" and page["paged"]["person_id"] == on_duty.id
    assert [e["role"] for e in page["chain"]] == ["on duty", "head of support"]
    routed = scene.events(request_id, "request.routed")[0]
    assert routed.after["owner_id"] == on_duty.id and routed.reason.startswith(f"TAM {tam.name} off")
    assert len(scene.rows(request_id, "page.pager")) == 1

    with LocalSlack(channels=(INTERNAL,)) as slack, LocalSmtp() as smtp:
        deliver_all(engine, scene.config, slack, smtp)
        dms = [m["text"] for m in slack.messages(on_duty.slack_user_id)]  # the owner hears of the request too
        assert len([t for t in dms if t.startswith(f"[{request_id}] Page: severity 1 critical request from")]) == 1
        mails = [m for m in smtp.received if on_duty.email in m.rcpt_tos]
        [mail] = [m for m in mails if "Page:" in m.message["Subject"]]
        text = mail.message.get_body(("plain",)).get_content()
        assert "step 1 of 2" in text and f"relreq page ack {request_id}" in text
    assert {r.status for r in scene.rows(request_id, "page.sent")} == {"sent"}

    code, out, err = relreq("page", "ack", request_id, token=on_duty.token)
    assert code == 0, err
    assert f"{request_id}: page acknowledged by {on_duty.name}" in out
    assert scene.page(request_id).acknowledged_via == "cli"
    assert scene.events(request_id, "page.acknowledged")[0].after["via"] == "cli"
    code, out, err = relreq("page", "ack", request_id, token=tam.token)
    assert code == 1 and f"already acknowledged by {on_duty.name}" in err and "409" in err
    code, out, _ = relreq("page", "show", request_id, token=tam.token)
    assert code == 0 and "acknowledged" in out and on_duty.name in out
    code, out, _ = relreq("page", "list", "--status", "acknowledged", token=tam.token)
    assert code == 0 and request_id in out
    with httpx.Client(base_url=api, headers=tam.headers, timeout=30) as client:
        request = client.get(f"/api/v1/requests/{request_id}").json()
    assert request["status"] == "submitted" and request["sla"]["met_at"] is None  # the clock still runs


def test_acknowledging_over_the_api_twice_is_a_conflict(scene, api):
    customer = scene.customer()
    triage = scene.person("triage")
    with httpx.Client(base_url=api, headers=triage.headers, timeout=30) as client:
        filed = client.post(
            "/api/v1/requests",
            json={"customer_id": customer, "kind": "false_positive", "severity": 2, "channel": "portal", "title": "x"},
        )
        request_id = filed.json()["id"]
        first = client.post(f"/api/v1/requests/{request_id}/page/acknowledge")
        assert first.status_code == 200, first.text
        assert (first.json()["acknowledged_by"], first.json()["acknowledged_via"]) == (triage.name, "api")
        again = client.post(f"/api/v1/requests/{request_id}/page/acknowledge", json={"via": "cli"})
        assert again.status_code == 409 and triage.name in again.json()["message"]
        for body in ({"via": "slack"}, {"via": "api", "by": "me"}):  # Slack presses its own button; nothing else
            refused = client.post(f"/api/v1/requests/{request_id}/page/acknowledge", json=body)
            assert refused.status_code == 422, (body, refused.text)


def test_a_customer_never_sees_pages(scene, api):
    customer, other = scene.customer(), scene.customer()
    user = scene.person("customer", customer_id=customer, slack=False)
    other_tam = scene.person("tam", tam_for=(other,))
    with httpx.Client(base_url=api, headers=user.headers, timeout=30) as client:
        filed = client.post(
            "/api/v1/requests",
            json={"kind": "false_positive", "severity": 1, "channel": "portal", "title": "Payroll flagged"},
        )
        request_id = filed.json()["id"]
        assert scene.page(request_id) is not None  # nobody on duty: the head of support is paged
        assert client.get("/api/v1/pages").status_code == 403
        assert client.get(f"/api/v1/requests/{request_id}/page").status_code == 403
        assert client.post(f"/api/v1/requests/{request_id}/page/acknowledge").status_code == 403
        timeline = client.get(f"/api/v1/requests/{request_id}/timeline").json()
    actions = [e["action"] for e in timeline]
    assert "request.submitted" in actions
    assert not [a for a in actions if a.startswith(("page.", "duty."))]
    assert not [e for e in timeline if "pager" in str(e)]
    with httpx.Client(base_url=api, headers=other_tam.headers, timeout=30) as client:
        assert client.get(f"/api/v1/requests/{request_id}/page").status_code == 404
        assert request_id not in [p["request_id"] for p in client.get("/api/v1/pages").json()]


def test_duty_check_lists_the_gaps_and_fails_when_nobody_covers_one(scene, api, relreq):
    manager, fallback = scene.person("duty_manager"), scene.person("duty_manager")
    now = scene.now()
    scene.shift(manager, now - timedelta(hours=1), now + timedelta(days=1))
    code, out, _ = relreq("duty", "check", "--days", "3", token=manager.token)
    assert code == 1
    assert "NOBODY" in out and scene.head.name in out
    code, out, _ = relreq("duty", "check", "--days", "3", "--json", token=manager.token)
    assert code == 1 and '"nobody": true' in out

    scene.fallback(fallback)
    code, out, err = relreq("duty", "check", "--days", "3", token=manager.token)
    assert code == 0, err
    assert fallback.name in out and "NOBODY" not in out
    assert time.strftime("%Z") in out  # dates in the reader's zone, named
