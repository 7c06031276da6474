"""The timeline told as a story (web/story.py), over timelines the real services wrote: submit, needs info and
its answer, accept, respond, severity, assign, and an e-mail that went dead in the real deliverer."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from release_requests import db
from release_requests.notifications import service as notifications
from release_requests.notifications.delivery import Deliverer
from release_requests.notifications.schemas import NotificationFilters
from release_requests.notifications.transports import Delivered, PermanentError
from release_requests.requests import presentation, service
from release_requests.requests.schemas import Accept, Answer, Assign, NeedsInfo, Respond, SeverityChange, TimelineEntry
from release_requests.web import story
from release_requests.web.i18n import catalog, translate
from release_requests.workflows import intake
from tests.conftest import Builder


def english(text: str, **params) -> str:
    return translate("en", text, **params)


def russian(text: str, **params) -> str:
    return translate("ru", text, **params)


class FakeTransport:
    """Slack delivers; the mail server refuses every recipient for good."""

    configured, reason = True, "configured"

    def __init__(self, name: str, refuse: str | None = None) -> None:
        self.name, self.refuse = name, refuse

    def send(self, notice) -> Delivered:
        if self.refuse:
            raise PermanentError(self.refuse)
        return Delivered(external_id=f"{self.name}/{notice.id}")


@pytest.fixture(scope="module")
def told(pg_server, admin_url, template_db, config):
    """One request's life through the services, in a database of its own (the deliverer takes every due row)."""
    from tests.conftest import clone_database

    engine = db.make_engine(clone_database(pg_server, admin_url, template_db))
    sessions = db.make_sessionmaker(engine)
    deliverer = Deliverer(
        engine=engine,
        config=config,
        transports=[FakeTransport("slack"), FakeTransport("email", refuse="550 mailbox unavailable")],
    )
    try:
        with db.transaction(sessions) as s:
            b = Builder(s, config)
            customer = b.customer()
            people = {
                "tam": b.person("tam", tam_for=[customer.id]),
                "triage": b.person("triage"),
                "engineer": b.person("build_engineer"),
                "customer": b.person("customer", customer_id=customer.id),
            }
            request_id = b.request(by=people["tam"], customer=customer, severity=2).id
        deliverer.deliver_due()
        steps = [
            lambda s, p: intake.triage(
                s,
                actor=p["triage"],
                request_id=request_id,
                decision=NeedsInfo(decision="needs_info", question="Which build of payroll.exe?"),
                config=config,
            ),
            lambda s, p: service.answer(s, actor=p["customer"], request_id=request_id, data=Answer(message="4.2.1")),
            lambda s, p: intake.triage(
                s,
                actor=p["triage"],
                request_id=request_id,
                decision=Accept(
                    decision="accept",
                    severity=1,
                    assignee=p["engineer"].email,
                    note="reproducible with base 2026.11.29.1",
                ),
                config=config,
            ),
            lambda s, p: service.respond(
                s, actor=p["tam"], request_id=request_id, data=Respond(message="A fix is on its way."), config=config
            ),
            lambda s, p: service.change_severity(
                s,
                actor=p["tam"],
                request_id=request_id,
                data=SeverityChange(severity=2, reason="payroll moved to Monday"),
            ),
            lambda s, p: service.assign(
                s, actor=p["tam"], request_id=request_id, data=Assign(assignee=str(p["tam"].id))
            ),
        ]
        for step in steps:
            with db.transaction(sessions) as s:
                step(s, {role: s.merge(person) for role, person in people.items()})
        deliverer.deliver_due()
        with db.transaction(sessions) as s:
            staff = presentation.request_timeline(s, actor=s.merge(people["triage"]), request_id=request_id)
            customers = presentation.request_timeline(s, actor=s.merge(people["customer"]), request_id=request_id)
            rows = notifications.list_notifications(
                s, actor=s.merge(people["triage"]), filters=NotificationFilters(request_id=request_id, limit=1000)
            )
            outbox = {row.id: row.status for row in rows}
            names = {role: f"{p.name} ({p.role})" for role, p in people.items()}
            engineer_id, tam_id = people["engineer"].id, people["tam"].id
        yield {
            "staff": staff,
            "customer": customers,
            "outbox": outbox,
            "names": names,
            "people": {engineer_id: names["engineer"], tam_id: names["tam"]},
            "customer_email": customer.email_contacts[0],
        }
    finally:
        engine.dispose()


def staff_story(told, _=english):
    return story.tell(told["staff"], _=_, staff=True, people=told["people"], outbox=told["outbox"])


def line(lines, action: str) -> story.Line:
    return next(x for x in lines if x.action == action)


def told_text(x: story.Line) -> str:
    return " · ".join(f"{t.label}: " + ", ".join(d.text for d in t.deliveries) for t in x.told)


def test_each_step_is_one_line_naming_who_did_what(told):
    lines = staff_story(told)
    names = told["names"]
    assert lines[0].text == f"Filed by {names['tam']} by phone"
    asked = line(lines, "request.needs_info")
    assert (asked.text, asked.detail) == (f"{names['triage']} asked for information", "Which build of payroll.exe?")
    answered = line(lines, "request.answered")
    assert (answered.text, answered.detail) == (f"{names['customer']} answered the question", "4.2.1")
    accepted = line(lines, "request.accepted")
    assert accepted.text == f"Accepted by {names['triage']}; severity 2 → 1; assigned to {names['engineer']}"
    assert accepted.detail == "reproducible with base 2026.11.29.1" and accepted.tone == "good"
    assert line(lines, "build.opened").text == "Build 1 waits for an engineer's fix"
    assert line(lines, "request.responded").detail == "A fix is on its way."
    changed = line(lines, "request.severity_changed")
    assert (changed.text, changed.detail) == (f"Severity changed 1 → 2 by {names['tam']}", "payroll moved to Monday")
    assert line(lines, "request.assigned").text == f"Assigned to {names['tam']} by {names['tam']}"
    assert not any(x.action.startswith("notification") for x in lines), "deliveries are folded into their step"
    assert not any("<" in x.text for x in lines), "no mailbox in an actor's name"


def test_notices_are_folded_into_their_step_and_a_dead_letter_is_loud(told):
    lines = staff_story(told)
    filed = lines[0]
    assert filed.loud
    customer_told = next(t for t in filed.told if t.label == "Customer told")
    texts = [d.text for d in customer_told.deliveries]
    assert texts[0] == f"e-mail to {told['customer_email']} not delivered: 550 mailbox unavailable"
    assert customer_told.deliveries[0].dead and "Slack sent" in texts
    assert "Team alerted" in [t.label for t in filed.told]  # the outbox's own alert about the dead letter
    asked = line(lines, "request.needs_info")
    assert told_text(asked).startswith("Customer told: e-mail to ")  # the question's own notices, on its line
    responded = line(lines, "request.responded")
    assert [t.label for t in responded.told] == ["Customer told", "Team alerted"] and responded.loud
    assert not line(lines, "request.severity_changed").told  # a step that told nobody says nothing about it


def test_customers_read_a_safe_story(told):
    lines = story.tell(told["customer"], _=english, staff=False)
    everything = " ".join(f"{x.text} {x.detail or ''} {told_text(x)}" for x in lines)
    assert "@" not in everything, "no mailbox: neither staff's nor the recipients'"
    routed = line(lines, "request.routed")
    assert (routed.text, routed.detail) == ("Passed to the support team", None)
    staff_routed = line(staff_story(told), "request.routed")
    assert staff_routed.detail and staff_routed.detail not in everything  # the routing reason stays inside
    accepted = line(lines, "request.accepted")
    assert accepted.text == f"Accepted by {told['names']['triage']}; severity 2 → 1"  # no engineer's name
    assert line(lines, "request.assigned").text == f"Assigned to an engineer by {told['names']['tam']}"
    labels = {t.label for x in lines for t in x.told}
    assert labels == {"You were told"}
    assert told_text(lines[0]) == "You were told: e-mail not delivered, Slack sent" and lines[0].loud


def test_the_story_speaks_russian(told):
    lines = staff_story(told, _=russian)
    names = told["names"]
    assert lines[0].text == f"Подан по телефону: {names['tam']}"
    assert line(lines, "request.accepted").text.startswith(f"Принят: {names['triage']}; важность 2 → 1")
    assert "не доставлено" in told_text(lines[0])


def test_an_action_nobody_taught_the_story_still_gets_a_line():
    at = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    entries = [
        TimelineEntry(
            seq=1,
            at=at,
            actor="system:outbox",
            action="notification.queued",
            entity="notification:n1",
            before=None,
            after={"event": "mystery.event", "audience": "internal", "channel": "webhook", "recipient": "internal"},
            reason=None,
        ),
        TimelineEntry(
            seq=2,
            at=at,
            actor="Ann Lee <ann@vendor.example> (admin)",
            action="widget.frobbed",
            entity="widget:7",
            before=None,
            after=None,
            reason="because",
        ),
    ]
    lines = story.tell(entries, _=english, staff=True, outbox={"n1": "skipped"})
    assert [(x.text, x.detail) for x in lines] == [("Notice", None), ("Widget frobbed (Ann Lee (admin))", "because")]
    assert told_text(lines[0]) == "Team told: webhook not sent: not configured here"


STORY = Path(story.__file__)
TEXTS = re.compile(r"""(?:\b_|\bsay)\(\s*"((?:[^"\\]|\\.)*)\"""")


def test_every_text_of_the_story_has_a_russian_translation():
    source = STORY.read_text(encoding="utf-8")
    wanted = set(TEXTS.findall(source))
    for words in (story.SYSTEMS, story.CHANNELS, story.INTAKE, story.STATES):
        wanted |= set(words.values())
    wanted |= {"Customer told", "You were told", "Team told", "Team alerted"}
    views = (STORY.parent / "request_views.py").read_text(encoding="utf-8")
    wanted |= set(re.findall(r'translate\(me\.language, "([^"]+)"\)', views))
    assert len(wanted) > 60
    missing = sorted(text for text in wanted if text not in catalog())
    assert not missing, f"add to release_requests/web/translations/request.toml: {missing}"


def test_the_page_says_a_dead_letter_loudly(told):
    from release_requests.web.rendering import ENV

    html = ENV.get_template("request_timeline.html").render(
        lines=story.tell(told["customer"], _=english, staff=False), _=english, when=lambda at: at.isoformat()
    )
    assert '<strong class="loud" role="alert">e-mail not delivered</strong>' in html
    assert 'class="step has-dead"' in html
