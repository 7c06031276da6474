"""The scheduled sender (`reports.delivery.send_due`): the daily digest at each recipient's own local time and
the regular report after its period, each exactly once — across repeated runs and a process killed halfway —
then through the outbox to a real SMTP server and the local Slack.

Each test has its own database (the `scene` fixture): the digest goes to every default staff recipient, so a
shared database would make the recipient list depend on other tests.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pypdf
from sqlalchemy import select

from release_requests import db
from release_requests.clock import db_now
from release_requests.people.models import Person
from release_requests.reports.delivery import last_complete_period, send_due
from release_requests.reports.models import ReportDelivery
from release_requests.reports.preferences import set_report_preferences
from release_requests.reports.schemas import ReportPreferencesIn
from tests.notifications.conftest import deliver_until_quiet

MOSCOW = ZoneInfo("Europe/Moscow")
HOSTILE = "<!channel> Payroll <b>app</b> & *bold*"


def _tomorrow_at(scene, hour: int, minute: int, zone: ZoneInfo) -> datetime:
    with db.transaction(scene.sessions) as s:
        today = db_now(s).astimezone(zone).date()
    return datetime.combine(today + timedelta(days=1), time(hour, minute), tzinfo=zone)


def _prefs(scene, customer_id: str, by: int, **values) -> None:
    with db.transaction(scene.sessions) as s:
        actor = s.get(Person, by)
        set_report_preferences(s, actor=actor, customer_id=customer_id, data=ReportPreferencesIn(**values))


def _deliveries(scene, kind: str) -> list[tuple[str, str]]:
    with db.transaction(scene.sessions) as s:
        rows = s.scalars(select(ReportDelivery).where(ReportDelivery.kind == kind).order_by(ReportDelivery.id))
        return [(r.recipient, r.period_start.isoformat()) for r in rows]


def _send_in_a_process_that_dies(committed_db: str, now: datetime, crash_at: str) -> int:
    code = (
        "import sys; from datetime import datetime; from pathlib import Path; from release_requests import db; "
        "from release_requests.config import load_config; from release_requests.reports.delivery import send_due; "
        "send_due(db.make_sessionmaker(db.make_engine(sys.argv[1])), config=load_config(Path('config')), "
        "now=datetime.fromisoformat(sys.argv[2]))"
    )
    env = {**os.environ, "RR_CRASH_AT": crash_at}
    done = subprocess.run([sys.executable, "-c", code, committed_db, now.isoformat()], env=env, timeout=60)
    return done.returncode


def test_the_digest_goes_once_per_recipient_per_day_at_their_own_time_even_across_a_crash(scene, config, committed_db):
    customer = scene.customer(email_contacts=["soc@example.com"])
    tam = scene.person("tam", tam_for=(customer,), timezone="America/New_York")  # 09:05 in Moscow is 01:05 there
    scene.person("build_engineer")  # not a default recipient
    scene.request(customer, by=tam, severity=1, title=HOSTILE)
    scene.request(customer, by=tam, severity=3)  # not critical: not in the digest
    nine_five_moscow = _tomorrow_at(scene, 9, 5, MOSCOW)

    assert _send_in_a_process_that_dies(committed_db, nine_five_moscow, "reports:after_queue") == -9
    assert _deliveries(scene, "digest") == []  # the killed run left nothing behind: no claim, no message
    assert scene.rows(event="report.digest") == []

    sent = send_due(scene.sessions, config=config, now=nine_five_moscow)
    day = nine_five_moscow.date().isoformat()
    contact = f"email:soc@example.com:{customer}"  # a contact's digest is keyed by address and customer
    assert [(s.kind, s.recipient, s.items, s.messages) for s in sent] == [("digest", contact, 1, 1)]
    assert _deliveries(scene, "digest") == [(contact, day)]
    assert send_due(scene.sessions, config=config, now=nine_five_moscow + timedelta(minutes=5)) == []

    rows = scene.rows(event="report.digest")
    assert [(r.recipient, r.audience, r.channel) for r in rows] == [("soc@example.com", "customer", "email")]


def test_the_tams_digest_follows_the_tams_zone_and_covers_their_customers(scene, config):
    customer, other = scene.customer(), scene.customer()
    tam = scene.person("tam", tam_for=(customer,), timezone="Asia/Vladivostok")
    scene.request(customer, by=tam, severity=2, title="Mine")
    admin = scene.person("admin", timezone="Asia/Tokyo")  # a default recipient too: 07:55 in Tokyo, not yet due
    scene.request(other, by=admin, severity=1, title="Not my customer")
    _prefs(scene, customer, admin, digest_enabled=False)
    _prefs(scene, other, admin, digest_enabled=False)
    with db.transaction(scene.sessions) as s:
        email = s.get(Person, tam).email
    vladivostok = ZoneInfo("Asia/Vladivostok")
    before_nine = _tomorrow_at(scene, 8, 55, vladivostok)
    assert send_due(scene.sessions, config=config, now=before_nine) == []
    sent = send_due(scene.sessions, config=config, now=before_nine + timedelta(minutes=10))
    assert [(s.recipient, s.items) for s in sent] == [(f"email:{email}", 1)]  # only the assigned customer's request
    context = scene.rows(event="report.digest")[0].context["composed"]
    assert "Mine" in context["text"] and "Not my customer" not in context["text"]


def test_the_digest_reaches_smtp_as_text_and_html_and_the_customers_slack_channel_escaped(
    scene, config, make_deliverer, smtp, slack
):
    customer = scene.customer(email_contacts=["soc@example.com"])
    tam = scene.person("tam", tam_for=(customer,))
    scene.request(customer, by=tam, severity=1, title=HOSTILE)
    _prefs(scene, customer, tam, digest_slack=True, digest_at="08:00")
    send_due(scene.sessions, config=config, now=_tomorrow_at(scene, 8, 1, MOSCOW))
    deliver_until_quiet(make_deliverer())

    digests = [m for m in smtp.received if m.rcpt_tos == ["soc@example.com"] and "igest" in m.message["Subject"]]
    assert len(digests) == 1
    message = digests[0].message
    body = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert HOSTILE in body and "<b>app</b>" not in html and "&lt;b&gt;app&lt;/b&gt;" in html
    posted = slack.messages(customer)  # the scene names each customer's channel after its id
    digest_posts = [m for m in posted if "igest" in m.get("text", "")]
    assert len(digest_posts) == 1
    blocks = str(digest_posts[0]["blocks"])
    assert "<!channel>" not in blocks and "&lt;!channel&gt;" in blocks


def test_the_monthly_report_goes_once_after_its_month_with_its_pdf(scene, config, make_deliverer, smtp):
    customer = scene.customer(email_contacts=["ciso@example.com"])
    tam = scene.person("tam", tam_for=(customer,))
    scene.request(customer, by=tam, severity=2)
    _prefs(scene, customer, tam, frequency="monthly", format="pdf", digest_enabled=False)
    with db.transaction(scene.sessions) as s:
        today = db_now(s).astimezone(MOSCOW).date()
    first_of_next_month = (today.replace(day=28) + timedelta(days=4)).replace(day=1)
    period = last_complete_period("monthly", first_of_next_month)
    assert period.start == today.replace(day=1)

    on_time = datetime.combine(first_of_next_month, time(9, 1), tzinfo=MOSCOW)
    sent = send_due(scene.sessions, config=config, now=on_time)
    assert [(s.kind, s.recipient, s.items, s.messages) for s in sent] == [
        ("customer_report", f"customer:{customer}", 1, 1)
    ]
    assert send_due(scene.sessions, config=config, now=on_time + timedelta(hours=1)) == []
    deliver_until_quiet(make_deliverer())
    [mail] = [
        m
        for m in smtp.received
        if m.rcpt_tos == ["ciso@example.com"]
        and m.message.is_multipart()
        and any(True for _ in m.message.iter_attachments())
    ]
    [attachment] = list(mail.message.iter_attachments())
    assert attachment.get_filename() == f"report-{customer}-{period.label}.pdf"
    text = pypdf.PdfReader(io.BytesIO(attachment.get_content())).pages[0].extract_text()
    assert customer in text or "Customer" in text


def test_old_periods_are_not_mailed_in_a_burst(scene, config):
    scene.customer(email_contacts=["ciso@example.com"])  # quarterly by default, its quarter long over
    with db.transaction(scene.sessions) as s:
        today = db_now(s).astimezone(MOSCOW).date()
    next_quarter_start = datetime.combine(
        last_complete_period("quarterly", today).end + timedelta(days=1), time(0), tzinfo=MOSCOW
    )
    far_later = next_quarter_start + timedelta(days=200)  # long after the customer's period ended
    assert [s for s in send_due(scene.sessions, config=config, now=far_later) if s.kind == "customer_report"] == []
    assert _deliveries(scene, "customer_report") == []


def test_periods_are_whole_weeks_months_and_quarters_before_today():
    assert last_complete_period("weekly", date(2026, 11, 30)).model_dump() == {
        "start": date(2026, 11, 23),
        "end": date(2026, 11, 29),
        "label": "2026-W48",
    }
    assert last_complete_period("monthly", date(2026, 3, 1)).end == date(2026, 2, 28)
    assert last_complete_period("quarterly", date(2027, 1, 1)).model_dump() == {
        "start": date(2026, 10, 1),
        "end": date(2026, 12, 31),
        "label": "2026Q4",
    }


def test_a_quarterly_report_follows_a_monthly_one_that_began_the_same_day(scene, config):
    customer = scene.customer(email_contacts=["ciso@example.com"])
    tam = scene.person("tam", tam_for=(customer,))
    _prefs(scene, customer, tam, frequency="quarterly", digest_enabled=False)
    with db.transaction(scene.sessions) as s:
        today = db_now(s).astimezone(MOSCOW).date()
    next_quarter = last_complete_period("quarterly", today).end + timedelta(days=1)
    quarter = last_complete_period("quarterly", (next_quarter + timedelta(days=95)).replace(day=1))
    first_month_end = (quarter.start + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    with db.transaction(scene.sessions) as s:  # the monthly report of the quarter's first month went out earlier
        s.add(
            ReportDelivery(
                kind="customer_report",
                recipient=f"customer:{customer}",
                customer_id=customer,
                period_start=quarter.start,
                period_end=first_month_end,
                as_of=db_now(s),
                items=0,
            )
        )
    on_time = datetime.combine(quarter.end + timedelta(days=1), time(9, 1), tzinfo=MOSCOW)
    sent = send_due(scene.sessions, config=config, now=on_time)
    assert [(s.kind, s.period_start) for s in sent] == [("customer_report", quarter.start)]
    assert _deliveries(scene, "customer_report")[-1] == (f"customer:{customer}", quarter.start.isoformat())


def test_a_person_gets_their_own_digest_even_when_a_customer_lists_their_address(scene, config):
    tokyo_customer = scene.customer(timezone="Asia/Tokyo", country="JP")
    other_customer = scene.customer()
    tam = scene.person("tam", tam_for=(tokyo_customer, other_customer), timezone="Europe/Moscow")
    with db.transaction(scene.sessions) as s:
        tam_email = s.get(Person, tam).email
    _prefs(scene, tokyo_customer, tam, recipients=[tam_email, "noc@example.com"])
    _prefs(scene, other_customer, tam, digest_enabled=False)
    scene.request(tokyo_customer, by=tam, severity=1, title="Tokyo outage")
    scene.request(other_customer, by=tam, severity=1, title="Moscow outage")

    nine_tokyo = _tomorrow_at(scene, 9, 5, ZoneInfo("Asia/Tokyo"))  # 03:05 in Moscow: the TAM's time has not come
    sent = send_due(scene.sessions, config=config, now=nine_tokyo)
    assert [s.recipient for s in sent] == [f"email:noc@example.com:{tokyo_customer}"]
    sent = send_due(scene.sessions, config=config, now=_tomorrow_at(scene, 9, 5, MOSCOW))
    assert [(s.recipient, s.items) for s in sent] == [(f"email:{tam_email}", 2)]  # both customers, once
