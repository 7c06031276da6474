"""Postgres restarted under load: clients get 503 with Retry-After while it is down (never a 500), nothing
acknowledged is lost, a retry with the same submission_key files nothing twice, and intake recovers on its own."""

from __future__ import annotations

import threading
import time
import uuid

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from release_requests import db
from release_requests.api.app import create_app
from release_requests.audit.service import Actor
from release_requests.customers.schemas import CustomerCreate
from release_requests.customers.service import assign_tam, create_customer
from release_requests.people.service import PersonCreate, create_person, issue_token
from release_requests.requests.models import ReleaseRequest
from tests.flows.dedicated_pg import dedicated_postgres

SYSTEM = Actor.system("tests")


def _tam_token(sessions) -> tuple[str, str]:
    with db.transaction(sessions) as s:
        customer = create_customer(
            s, actor=SYSTEM, data=CustomerCreate(name="Restart Bank", tier="enterprise", timezone="UTC", country="DE")
        )
        tam = create_person(s, actor=SYSTEM, data=PersonCreate(name="Tam", role="tam", email="tam@vendor.example"))
        assign_tam(s, actor=SYSTEM, customer_id=customer.id, person=tam)
        return customer.id, issue_token(s, actor=SYSTEM, person=tam)


def test_a_postgres_restart_answers_503_with_retry_after_and_loses_nothing(settings, config):
    with dedicated_postgres() as pg:
        engine = db.make_engine(pg.url)
        sessions = db.make_sessionmaker(engine)
        customer_id, token = _tam_token(sessions)
        app = create_app(settings=settings, config=config, sessions=sessions)
        answers: list[tuple[int, str | None]] = []
        filed: dict[str, str] = {}  # submission key → the request id acknowledged for it
        stop = threading.Event()

        def submit_until_stopped(client: TestClient) -> None:
            while not stop.is_set():
                key = uuid.uuid4().hex
                body = {"customer_id": customer_id, "kind": "false_positive", "severity": 3, "channel": "tam"}
                for _attempt in range(200):  # as a careful client does: the same key until acknowledged
                    answer = client.post("/api/v1/requests", json={**body, "title": "t", "submission_key": key})
                    answers.append((answer.status_code, answer.headers.get("Retry-After")))
                    if answer.status_code == 201:
                        filed[key] = answer.json()["id"]
                        break
                    time.sleep(0.05)

        with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
            thread = threading.Thread(target=submit_until_stopped, args=(client,))
            thread.start()
            try:
                while len(filed) < 5:
                    time.sleep(0.05)
                pg.restart(down_for=1.5)
                settled = len(filed)
                deadline = time.monotonic() + 30
                while len(filed) < settled + 5 and time.monotonic() < deadline:
                    time.sleep(0.05)
            finally:
                stop.set()
                thread.join(30)
            assert client.get("/healthz").status_code == 200  # recovered on its own

        statuses = {status for status, _ in answers}
        assert statuses <= {201, 503}, statuses  # never a 500 for a database that is restarting
        refused = [retry_after for status, retry_after in answers if status == 503]
        assert refused and all(retry_after == "2" for retry_after in refused)  # the outage was seen, and said so
        assert len(filed) >= settled + 5  # intake came back without anyone restarting the API
        with db.transaction(sessions) as s:
            stored = dict(s.execute(select(ReleaseRequest.submission_key, ReleaseRequest.id)).all())
            count = s.scalar(select(func.count()).select_from(ReleaseRequest))
        assert {key: stored[key] for key in filed} == filed  # every acknowledged request is there, as answered
        assert count == len(stored) <= len(filed) + 1  # none twice; at most the one cut off by `stop`
        engine.dispose()
