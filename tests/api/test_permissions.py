"""The permission table is the truth: every route declares its action, and every route answers every role
as the table says — over real HTTP, against the real services and Postgres.

One small world (a customer, its TAM and user, one person of every role, a request with a stored sample, a
notice, an enrolled client) is built once on its own database. Then each route is called as each role with
one sample call: a role the table refuses must get 403 naming the action; a role it allows must not get the
table's 403 (404, 409 or 422 are fine: the data may not fit, but the table let it through). Nothing 5xx.
"""

from __future__ import annotations

import hashlib
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import get_args

import httpx
import pytest
from sqlalchemy import select

from artifacts.signing import create_signing_key
from release_requests import access, db
from release_requests.api.app import create_app
from release_requests.api.reference import declared_actions
from release_requests.config import Role, load_config
from release_requests.errors import Forbidden
from release_requests.notifications.models import Notification
from release_requests.people.models import Person
from release_requests.people.service import PersonCreate
from release_requests.releases import clients
from release_requests.releases.schemas import ClientEnrolIn
from release_requests.requests.schemas import SubmitRequest
from release_requests.settings import Settings
from release_requests.workflows import intake
from tests.conftest import REPO, User, World, clone_database, serve_app

SLACK_SECRET = "permissions-test-signing-secret"
SAMPLE = b"permission test sample: harmless bytes"
SAMPLE_SHA = hashlib.sha256(SAMPLE).hexdigest()


# --------------------------------------------------------------------------------------------------
# The world


@dataclass
class Perms:
    url: str
    customer_id: str
    users: dict[str, User]  # role → a person of that role (the TAM is assigned to the customer)
    bystander: User  # somebody else, whose leave only managers record
    request_id: str  # open request of the customer, with a stored sample
    spare_id: str  # for cancel and close, so the request above stays open for the other routes
    notification_id: str
    client_id: str  # a vendor update client

    @property
    def duty_manager(self) -> str:
        return str(self.users["duty_manager"].id)

    def client(self, user: User | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=user.headers if user else {}, timeout=30)


def _sigrepo(path: Path) -> None:
    """A minimal signature repository (one commit on `main`): revert-fix needs one to look at."""
    path.mkdir(parents=True)
    run = lambda *args: subprocess.run(["git", *args], cwd=path, check=True, capture_output=True)  # noqa: E731
    run("init", "-q", "-b", "main")
    (path / "README").write_text("signatures\n")
    run("add", ".")
    run("-c", "user.name=Tests", "-c", "user.email=tests@example.com", "commit", "-qm", "start")


@pytest.fixture(scope="module")
def perms(pg_server, admin_url, template_db, config, tmp_path_factory) -> Iterator[Perms]:
    url = clone_database(pg_server, admin_url, template_db)  # its own database: duty and fallback are global
    data_dir = tmp_path_factory.mktemp("permissions")
    create_signing_key(data_dir=data_dir)
    _sigrepo(data_dir / "sigrepo")
    settings = Settings(
        database_url=url, data_dir=data_dir, config_dir=REPO / "config", slack_signing_secret=SLACK_SECRET
    )
    engine = db.make_engine(url)
    app = create_app(settings=settings, config=config, sessions=db.make_sessionmaker(engine))
    try:
        with serve_app(app) as api:
            world = World(engine, api)
            customer_id = world.customer()
            users = {
                role: world.user(role, customer_id, tam_for=[customer_id] if role == "tam" else [])
                for role in access.ROLES
            }
            bystander = world.user("triage")
            with db.transaction(world.sessions) as s:
                tam = s.get(Person, users["tam"].id)
                filed = [
                    intake.submit(
                        s,
                        actor=tam,
                        data=SubmitRequest(
                            customer_id=customer_id, kind="false_positive", severity=3, channel="phone", title=title
                        ),
                        config=config,
                    ).id
                    for title in ("Payroll app flagged", "Spare report")
                ]
                notification_id = s.scalar(select(Notification.id).where(Notification.request_id == filed[0]).limit(1))
                admin = s.get(Person, users["admin"].id)
                client_id = clients.enrol(s, person=admin, data=ClientEnrolIn(name="build-host"))[0].id
            perms = Perms(api, customer_id, users, bystander, filed[0], filed[1], notification_id, client_id)
            with perms.client(users["tam"]) as tam_client:
                stored = tam_client.post(f"/api/v1/requests/{filed[0]}/samples", files={"file": ("app.exe", SAMPLE)})
                assert stored.status_code == 201, stored.text
            yield perms
    finally:
        engine.dispose()


# --------------------------------------------------------------------------------------------------
# One sample call per route (and per conditional action): a new route without one fails the test


@dataclass(frozen=True)
class Call:
    actions: tuple[str, ...]  # what this call exercises, in the order the service checks them
    make: Callable[[Perms, User], tuple[str, dict]]  # → (url, httpx keyword arguments)


def call(*args) -> Call:
    """call(action, …, make): the actions a sample call exercises, then the function making it."""
    *actions, make = args
    return Call(tuple(actions), make)


R = "/api/v1/requests"
HC = "/api/v1/healthchecks"


def _json(body: dict) -> dict:
    return {"json": body}


SAMPLES: dict[tuple[str, str], list[Call]] = {
    ("POST", R): [
        call(
            "request.file",
            lambda w, u: (
                R,
                _json(
                    {
                        "customer_id": w.customer_id,
                        "kind": "false_positive",
                        "severity": 3,
                        "channel": "portal",
                        "title": f"filed by {u.role}",
                    }
                ),
            ),
        )
    ],
    ("GET", R): [call("request.read", lambda w, u: (R, {}))],
    ("GET", R + "/{request_id}"): [call("request.read", lambda w, u: (f"{R}/{w.request_id}", {}))],
    ("GET", R + "/{request_id}/timeline"): [call("request.read", lambda w, u: (f"{R}/{w.request_id}/timeline", {}))],
    ("POST", R + "/{request_id}/triage"): [
        call(
            "request.triage",
            lambda w, u: (f"{R}/{w.request_id}/triage", _json({"decision": "needs_info", "question": "Which file?"})),
        )
    ],
    ("POST", R + "/{request_id}/answers"): [
        call("request.answer", lambda w, u: (f"{R}/{w.request_id}/answers", _json({"message": "C:\\payroll.exe"})))
    ],
    ("POST", R + "/{request_id}/cancel"): [
        call("request.cancel", lambda w, u: (f"{R}/{w.spare_id}/cancel", _json({"reason": "filed twice"})))
    ],
    ("POST", R + "/{request_id}/responses"): [
        call("request.respond", lambda w, u: (f"{R}/{w.request_id}/responses", _json({"message": "On it."})))
    ],
    ("POST", R + "/{request_id}/severity"): [
        call(
            "request.change_severity",
            lambda w, u: (f"{R}/{w.request_id}/severity", _json({"severity": 2, "reason": "payroll runs today"})),
        )
    ],
    ("POST", R + "/{request_id}/assignee"): [
        call(
            "request.assign",
            lambda w, u: (f"{R}/{w.request_id}/assignee", _json({"assignee": str(w.users["triage"].id)})),
        )
    ],
    ("POST", R + "/{request_id}/samples"): [
        call("sample.add", lambda w, u: (f"{R}/{w.request_id}/samples", {"files": {"file": ("app.exe", SAMPLE)}}))
    ],
    ("GET", R + "/{request_id}/samples"): [call("request.read", lambda w, u: (f"{R}/{w.request_id}/samples", {}))],
    ("GET", R + "/{request_id}/samples/{sha256}"): [
        call("sample.fetch", lambda w, u: (f"{R}/{w.request_id}/samples/{SAMPLE_SHA}", {}))
    ],
    ("GET", "/api/v1/customers"): [call("customer.read", lambda w, u: ("/api/v1/customers", {}))],
    ("GET", "/api/v1/customers/{customer_id}"): [
        call("customer.read", lambda w, u: (f"/api/v1/customers/{w.customer_id}", {}))
    ],
    ("POST", "/api/v1/customers"): [
        call(
            "customer.create",
            lambda w, u: (
                "/api/v1/customers",
                _json({"name": f"Perm {uuid.uuid4().hex[:8]}", "tier": "standard", "timezone": "UTC", "country": "DE"}),
            ),
        )
    ],
    ("GET", "/api/v1/queue"): [call("queue.read", lambda w, u: ("/api/v1/queue", {}))],
    ("GET", "/api/v1/sla/due"): [
        call(
            "customer.read", lambda w, u: ("/api/v1/sla/due", {"params": {"customer_id": w.customer_id, "severity": 1}})
        )
    ],
    ("POST", "/api/v1/duty/shifts"): [
        call(
            "duty.plan",
            lambda w, u: (
                "/api/v1/duty/shifts",
                _json(
                    {
                        "person": w.duty_manager,
                        "starts_at": "2040-01-02T09:00:00Z",
                        "ends_at": "2040-01-02T17:00:00Z",
                    }
                ),
            ),
        )
    ],
    ("GET", "/api/v1/duty/shifts"): [call("duty.read", lambda w, u: ("/api/v1/duty/shifts", {}))],
    ("GET", "/api/v1/duty/now"): [call("duty.read", lambda w, u: ("/api/v1/duty/now", {}))],
    ("GET", "/api/v1/duty/check"): [call("duty.read", lambda w, u: ("/api/v1/duty/check", {}))],
    ("GET", "/api/v1/pages"): [call("page.read", lambda w, u: ("/api/v1/pages", {}))],
    ("GET", R + "/{request_id}/page"): [call("page.read", lambda w, u: (f"{R}/{w.request_id}/page", {}))],
    ("POST", R + "/{request_id}/page/acknowledge"): [
        call("page.acknowledge", lambda w, u: (f"{R}/{w.request_id}/page/acknowledge", {}))
    ],
    ("POST", "/api/v1/intake/email"): [
        call(
            "mail.ingest",
            lambda w, u: (
                "/api/v1/intake/email",
                {
                    "content": (
                        f"From: stranger@example.org\r\nMessage-ID: <{uuid.uuid4().hex}@example.org>\r\n"
                        "Subject: hello\r\n\r\nIs this support?\r\n"
                    ).encode(),
                    "headers": {"Content-Type": "message/rfc822"},
                },
            ),
        )
    ],
    ("GET", "/api/v1/intake/mail"): [call("mail.read", lambda w, u: ("/api/v1/intake/mail", {}))],
    ("GET", "/api/v1/intake/mail/{mail_id}"): [call("mail.read", lambda w, u: ("/api/v1/intake/mail/999999", {}))],
    ("GET", "/api/v1/intake/mail/{mail_id}/raw"): [
        call("mail.read", lambda w, u: ("/api/v1/intake/mail/999999/raw", {}))
    ],
    ("POST", "/api/v1/intake/mail/{mail_id}/assign"): [
        call("mail.assign", lambda w, u: ("/api/v1/intake/mail/999999/assign", _json({"customer_id": w.customer_id})))
    ],
    ("PUT", "/api/v1/duty/fallback"): [
        call("duty.set_fallback", lambda w, u: ("/api/v1/duty/fallback", _json({"person": w.duty_manager})))
    ],
    ("POST", "/api/v1/people/{person_ref}/leave"): [
        call(
            "leave.record_own",
            lambda w, u: (f"/api/v1/people/{u.id}/leave", _json({"first_day": "2040-03-01", "last_day": "2040-03-02"})),
        ),
        call(
            "leave.record_own",
            "leave.record_others",
            lambda w, u: (
                f"/api/v1/people/{w.bystander.id}/leave",
                _json({"first_day": "2040-04-01", "last_day": "2040-04-02"}),
            ),
        ),
    ],
    ("GET", R + "/{request_id}/pipeline"): [call("request.read", lambda w, u: (f"{R}/{w.request_id}/pipeline", {}))],
    ("GET", R + "/{request_id}/pipeline/diff"): [
        call("pipeline.diff", lambda w, u: (f"{R}/{w.request_id}/pipeline/diff", {}))
    ],
    ("POST", R + "/{request_id}/approvals"): [
        call("stage.sign", lambda w, u: (f"{R}/{w.request_id}/approvals", _json({"stage": "internal"}))),
        call(
            "stage.override",
            lambda w, u: (
                f"{R}/{w.request_id}/approvals",
                _json({"stage": "internal", "decision": "override", "reason": "payroll stops at noon"}),
            ),
        ),
    ],
    ("POST", R + "/{request_id}/fix"): [
        call(
            "fix.provide",
            lambda w, u: (f"{R}/{w.request_id}/fix", _json({"type": "ref", "ref": "refs/heads/fix-payroll"})),
        )
    ],
    ("POST", R + "/{request_id}/revert-fix"): [
        call("fix.revert", lambda w, u: (f"{R}/{w.request_id}/revert-fix", _json({"reason": "broke scanning"})))
    ],
    ("POST", R + "/{request_id}/split"): [
        call("request.split", lambda w, u: (f"{R}/{w.request_id}/split", _json({"reason": "a different file"})))
    ],
    ("POST", R + "/{request_id}/close"): [
        call("request.close", lambda w, u: (f"{R}/{w.spare_id}/close", _json({"reason": "fixed"})))
    ],
    ("GET", "/api/v1/notifications"): [call("notification.read", lambda w, u: ("/api/v1/notifications", {}))],
    ("POST", "/api/v1/notifications/{notification_id}/retry"): [
        call("notification.retry", lambda w, u: (f"/api/v1/notifications/{w.notification_id}/retry", {}))
    ],
    ("GET", "/api/v1/customers/{customer_id}/notification-preferences"): [
        call("preferences.read", lambda w, u: (f"/api/v1/customers/{w.customer_id}/notification-preferences", {}))
    ],
    ("PUT", "/api/v1/customers/{customer_id}/notification-preferences"): [
        call(
            "preferences.change",
            lambda w, u: (f"/api/v1/customers/{w.customer_id}/notification-preferences", _json({})),
        )
    ],
    ("POST", "/slack/interactions"): [
        call("slack.interaction", lambda w, u: ("/slack/interactions", {"content": b"payload=%7B%7D"}))
    ],
    ("GET", "/api/v1/channels"): [call("channel.read", lambda w, u: ("/api/v1/channels", {}))],
    ("GET", "/api/v1/channels/{channel}/history"): [
        call("channel.read", lambda w, u: ("/api/v1/channels/canary/history", {}))
    ],
    ("POST", "/api/v1/channels/{channel}/revert"): [
        call("channel.revert", lambda w, u: ("/api/v1/channels/canary/revert", _json({"reason": "detects payroll"})))
    ],
    ("POST", "/api/v1/channels/{channel}/resume"): [
        call("channel.resume", lambda w, u: ("/api/v1/channels/canary/resume", _json({"reason": "fixed base ready"})))
    ],
    ("POST", "/api/v1/clients"): [call("client.enrol", lambda w, u: ("/api/v1/clients", _json({"name": "laptop"})))],
    ("GET", "/api/v1/clients"): [call("client.read", lambda w, u: ("/api/v1/clients", {}))],
    ("DELETE", "/api/v1/clients/{client_id}"): [
        call("client.revoke", lambda w, u: (f"/api/v1/clients/{w.client_id}", {}))
    ],
    ("POST", "/api/v1/telemetry/detections"): [
        call("telemetry.report", lambda w, u: ("/api/v1/telemetry/detections", _json({})))
    ],
    ("POST", "/api/v1/known-clean"): [
        call(
            "known_clean.add",
            lambda w, u: ("/api/v1/known-clean", _json({"sha256": SAMPLE_SHA, "reason": "our payroll app"})),
        )
    ],
    ("GET", "/updates/public-key.pem"): [call("public", lambda w, u: ("/updates/public-key.pem", {}))],
    ("GET", "/updates/{channel}/manifest.json"): [
        call("update.download", lambda w, u: ("/updates/canary/manifest.json", {}))
    ],
    ("GET", "/updates/{channel}/artifacts/{sha256}"): [
        call("update.download", lambda w, u: (f"/updates/canary/artifacts/{SAMPLE_SHA}", {}))
    ],
    ("GET", "/healthz"): [call("public", lambda w, u: ("/healthz", {}))],
    # reports and their settings
    ("GET", "/api/v1/customers/{customer_id}/report-preferences"): [
        call("report.read", lambda w, u: (f"/api/v1/customers/{w.customer_id}/report-preferences", {}))
    ],
    ("PUT", "/api/v1/customers/{customer_id}/report-preferences"): [
        call("report.preferences", lambda w, u: (f"/api/v1/customers/{w.customer_id}/report-preferences", _json({})))
    ],
    ("GET", "/api/v1/reports/digest/subscription"): [
        call("report.read", lambda w, u: ("/api/v1/reports/digest/subscription", {}))
    ],
    ("PUT", "/api/v1/reports/digest/subscription"): [
        call("digest.subscribe", lambda w, u: ("/api/v1/reports/digest/subscription", _json({"enabled": False})))
    ],
    ("POST", "/api/v1/reports/notes"): [
        call(
            "report.note",
            lambda w, u: (
                "/api/v1/reports/notes",
                _json(
                    {
                        "customer_id": w.customer_id,
                        "period_start": "2026-10-01",
                        "period_end": "2026-12-31",
                        "body": f"noted by {u.role}",
                    }
                ),
            ),
        )
    ],
    ("GET", "/api/v1/reports/notes"): [
        call("report.read", lambda w, u: ("/api/v1/reports/notes", {"params": {"customer_id": w.customer_id}}))
    ],
    ("GET", "/api/v1/reports/daily"): [call("report.read", lambda w, u: ("/api/v1/reports/daily", {}))],
    ("GET", "/api/v1/reports/customer"): [
        call(
            "report.read",
            lambda w, u: ("/api/v1/reports/customer", {"params": {"customer_id": w.customer_id, "quarter": "2026Q4"}}),
        )
    ],
    # Health Checks: the customer has no certificate (a booking is 422) and HC-999999 does not exist (404)
    ("POST", HC): [
        call(
            "healthcheck.book",
            lambda w, u: (HC, _json({"customer_id": w.customer_id, "date": "2040-01-03", "engineer": w.duty_manager})),
        )
    ],
    ("GET", HC): [call("healthcheck.read", lambda w, u: (HC, {}))],
    ("GET", HC + "/{healthcheck_id}"): [call("healthcheck.read", lambda w, u: (f"{HC}/HC-999999", {}))],
    ("POST", HC + "/{healthcheck_id}/confirm"): [
        call("healthcheck.book", lambda w, u: (f"{HC}/HC-999999/confirm", {}))
    ],
    ("POST", HC + "/{healthcheck_id}/start"): [call("healthcheck.conduct", lambda w, u: (f"{HC}/HC-999999/start", {}))],
    ("POST", HC + "/{healthcheck_id}/reschedule"): [
        call(
            "healthcheck.book",
            lambda w, u: (f"{HC}/HC-999999/reschedule", _json({"date": "2040-01-04", "reason": "asked to"})),
        )
    ],
    ("POST", HC + "/{healthcheck_id}/cancel"): [
        call("healthcheck.book", lambda w, u: (f"{HC}/HC-999999/cancel", _json({"reason": "budget"})))
    ],
    ("POST", HC + "/{healthcheck_id}/findings"): [
        call("healthcheck.conduct", lambda w, u: (f"{HC}/HC-999999/findings", {"json": []}))
    ],
    ("GET", HC + "/{healthcheck_id}/findings"): [
        call("healthcheck.read", lambda w, u: (f"{HC}/HC-999999/findings", {}))
    ],
    ("POST", HC + "/{healthcheck_id}/deliver"): [
        call("healthcheck.conduct", lambda w, u: (f"{HC}/HC-999999/deliver", {}))
    ],
    ("GET", HC + "/{healthcheck_id}/report"): [
        call("healthcheck.read", lambda w, u: (f"{HC}/HC-999999/report", {"params": {"format": "pdf"}}))
    ],
}

# A route needing no person: what an anonymous call gets (the credential decides, never the role).
ANONYMOUS = {"public": {200}, "update.download": {404}, "telemetry.report": {401}, "slack.interaction": {401}}


def _routes(*, pages: bool = False):
    app = create_app(settings=Settings(), config=load_config(REPO / "config"), sessions=None)
    return declared_actions(app, pages=pages)


# --------------------------------------------------------------------------------------------------
# The table and the declarations


def test_every_route_declares_an_action_of_the_table_and_has_a_sample_call():
    routes = _routes()
    undeclared = [f"{r.method} {r.path}" for r in routes if r.action is None]
    assert not undeclared, f"routes without openapi_extra=access.needs(...): {undeclared}"
    unknown = [(r.path, a) for r in routes for a in (r.action, *r.also) if a not in access.RULES]
    assert not unknown, f"actions missing from access.RULES: {unknown}"
    capabilities = [(r.path, a) for r in routes for a in (r.action, *r.also) if access.RULES[a].capability]
    assert not capabilities, f"routes must declare calls, not capabilities: {capabilities}"
    for r in routes:
        calls = SAMPLES.get((r.method, r.path))
        assert calls, f"tests/api/test_permissions.py has no sample call for {r.method} {r.path}"
        exercised = {a for sample in calls for a in sample.actions}
        assert exercised == {r.action, *r.also}, f"{r.method} {r.path}: samples exercise {exercised}"
    assert set(SAMPLES) == {(r.method, r.path) for r in routes}, "samples for routes that no longer exist"


def test_every_call_in_the_table_is_some_routes_action():
    declared = {a for r in [*_routes(), *_routes(pages=True)] for a in (r.action, *r.also)}  # the console's too
    unused = [name for name, rule in access.RULES.items() if not rule.capability and name not in declared]
    assert not unused, f"rules no route declares: {unused}"


def test_the_stage_policy_stays_inside_the_table(config):
    """config/stages.toml narrows who signs each stage; it cannot name a role the table refuses."""
    signers = {rule.role for stage in config.stages.stage.values() for rule in stage.signoff}
    assert signers <= access.RULES["stage.sign"].roles
    assert set(config.stages.separation_of_duties.override_roles) <= access.RULES["stage.override"].roles


def test_a_refusal_names_the_action_and_the_roles_allowed():
    person = Person(role="build_engineer", name="B")
    with pytest.raises(Forbidden) as refused:
        access.authorize(person, "request.triage")
    assert (
        refused.value.message == "role 'build_engineer' may not triage requests (allowed: admin, duty_manager, triage)"
    )
    assert refused.value.details == {"action": "request.triage", "allowed": ["admin", "duty_manager", "triage"]}
    access.authorize(person, "fix.provide")
    with pytest.raises(KeyError, match="no rule for action 'request.tirage'"):
        access.needs("request.tirage")


def test_roles_are_the_tables_columns():
    assert set(get_args(Role)) <= access.EVERYONE  # roles the policy files may name
    for role in access.ROLES:
        PersonCreate(name="x", role=role, customer_id="c" if role == "customer" else None)
    with pytest.raises(ValueError, match="unknown role"):
        PersonCreate(name="x", role="superuser")


# --------------------------------------------------------------------------------------------------
# Every route × every role, over HTTP


def _refusal(response: httpx.Response) -> dict | None:
    """The table's 403 body (it carries `action` and `allowed`), or None."""
    if response.status_code != 403:
        return None
    body = response.json()
    return body if "allowed" in body else None


def test_every_route_answers_every_role_as_the_table_says(perms):
    failures = []
    sessions = {role: perms.client(user) for role, user in perms.users.items()}  # one client each: keep-alive
    for route in _routes():
        for sample in SAMPLES[(route.method, route.path)]:
            rules = [access.RULES[a] for a in sample.actions]
            for role, user in perms.users.items():
                url, kwargs = sample.make(perms, user)
                response = sessions[role].request(route.method, url, **kwargs)
                where = f"{route.method} {url} as {role} ({'+'.join(sample.actions)}): {response.status_code}"
                if response.status_code >= 500:
                    failures.append(f"{where} {response.text[:300]}")
                    continue
                refusal = _refusal(response)
                if rules[0].credential != access.TOKEN:  # no person: the role never decides
                    if response.status_code == 403:
                        failures.append(f"{where}: a route needing no person refused a role: {response.text[:200]}")
                    continue
                denied = next((a for a in sample.actions if role not in access.RULES[a].roles), None)
                if denied is not None and (refusal is None or refusal["action"] != denied):
                    failures.append(f"{where}: expected the table's 403 for {denied}: {response.text[:200]}")
                if denied is None and refusal is not None:
                    failures.append(f"{where}: the table allows it, yet: {response.text[:200]}")
    for client in sessions.values():
        client.close()
    assert not failures, "\n".join(failures)


def test_every_route_without_a_credential(perms):
    failures = []
    client = perms.client()
    for route in _routes():
        sample = SAMPLES[(route.method, route.path)][0]
        url, kwargs = sample.make(perms, perms.users["admin"])
        response = client.request(route.method, url, **kwargs)
        rule = access.RULES[sample.actions[0]]
        expected = {401} if rule.credential == access.TOKEN else ANONYMOUS[sample.actions[0]]
        if response.status_code not in expected:
            failures.append(f"{route.method} {url}: {response.status_code}, expected {expected}: {response.text[:200]}")
    client.close()
    assert not failures, "\n".join(failures)
