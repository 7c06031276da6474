"""Notification latency: request committed → customer notice received by Slack / the SMTP server.

    .venv/bin/python bench/notify_latency.py [--events 50] [--gap 0.2]

An embedded Postgres (temporary), the real migrations, LocalSlack and LocalSmtp (STARTTLS + AUTH), and
the LISTEN/NOTIFY deliverer (`flows.notifications.listen_and_deliver`) in a thread with a 30 s poll, so
every delivery measured was woken by the insert trigger. Each event is a submitted request (customer
Slack + customer e-mail + internal Slack notices); latency is from the submitting transaction's commit
to the moment the local server accepted the message. Events are spaced by --gap seconds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from devservers import LocalSlack, LocalSmtp  # noqa: E402
from flows.notifications import listen_and_deliver  # noqa: E402
from release_requests import db, embedded_pg  # noqa: E402
from release_requests.audit.service import Actor  # noqa: E402
from release_requests.config import load_config  # noqa: E402
from release_requests.customers.schemas import CustomerCreate  # noqa: E402
from release_requests.customers.service import create_customer  # noqa: E402
from release_requests.notifications.delivery import Deliverer  # noqa: E402
from release_requests.notifications.transports import SlackTransport, SmtpTransport  # noqa: E402
from release_requests.people.service import PersonCreate, create_person  # noqa: E402
from release_requests.requests.schemas import SubmitRequest  # noqa: E402
from release_requests.requests.service import submit_request  # noqa: E402


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50)
    parser.add_argument("--gap", type=float, default=0.2, help="seconds between events")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="rr-bench-") as tmp:
        server = embedded_pg.start_server(Path(tmp) / "pg")
        db.ensure_database(embedded_pg.server_url(server, "postgres"), "bench")
        url = embedded_pg.server_url(server, "bench")
        db.upgrade(url)
        config = load_config(REPO / "config")
        engine = db.make_engine(url)
        sessions = db.make_sessionmaker(engine)
        system = Actor.system("bench")
        with db.transaction(sessions) as s:
            customer = create_customer(
                s,
                actor=system,
                data=CustomerCreate(
                    id="bench-bank",
                    name="Bench Bank",
                    tier="enterprise",
                    timezone="Europe/Moscow",
                    country="RU",
                    slack_channel="bench-bank",
                    email_contacts=["soc@bench.example"],
                    language="ru",
                ),
            )
            engineer = create_person(
                s, actor=system, data=PersonCreate(name="Bench Engineer", role="triage", email="eng@vendor.example")
            )
            customer_id, engineer_id = customer.id, engineer.id

        with (
            LocalSlack(channels=("msa-engineering", "bench-bank")) as slack,
            LocalSmtp(user="relreq", password="bench", starttls=True) as smtp,
        ):
            deliverer = Deliverer(
                engine=engine,
                config=config,
                transports=[
                    SlackTransport(token=slack.token, base_url=slack.base_url),
                    SmtpTransport(smtp.url, sender=config.notifications.email.from_address),
                ],
            )
            stop = threading.Event()
            listener = threading.Thread(
                target=listen_and_deliver, args=(stop,), kwargs={"poll_seconds": 30, "deliverer": deliverer}
            )
            listener.start()
            time.sleep(0.5)
            slack_lat, mail_lat = [], []
            from release_requests.people.models import Person

            for i in range(args.events):
                with db.transaction(sessions) as s:
                    data = SubmitRequest(
                        customer_id=customer_id,
                        kind="false_positive",
                        severity=1,
                        channel="phone",
                        title=f"Bench FP {i}",
                    )
                    submit_request(s, actor=s.get(Person, engineer_id), data=data, config=config)
                committed = time.time()
                deadline = time.monotonic() + 30
                while len(slack.messages("bench-bank")) <= i or len(smtp.received) <= i:
                    if time.monotonic() > deadline:
                        raise SystemExit(f"event {i} not delivered within 30 s")
                    time.sleep(0.002)
                slack_lat.append(slack.messages("bench-bank")[i]["received_at"] - committed)
                mail_lat.append(smtp.received[i].at - committed)
                time.sleep(args.gap)
            stop.set()
            with engine.begin() as conn:
                conn.exec_driver_sql("NOTIFY rr_outbox")
            listener.join(10)
        engine.dispose()
        server.cleanup()

    print(f"{args.events} events (submitted request → customer notice), LISTEN/NOTIFY deliverer, one process")
    print(f"{'':16}{'p50':>9}{'p95':>9}{'max':>9}")
    for name, values in (("Slack", slack_lat), ("e-mail", mail_lat), ("both", slack_lat + mail_lat)):
        print(
            f"{name:16}"
            + "".join(f"{v * 1000:8.0f}ms" for v in (statistics.median(values), percentile(values, 95), max(values)))
        )


if __name__ == "__main__":
    main()
