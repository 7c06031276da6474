"""`relreq demo`: the whole story on this machine, printed as it happens.

A bank in Moscow phones in a critical false positive at 02:00 on a Sunday; the TAM is off, so the
manager on duty owns it and is paged (Slack, e-mail and a local Events v2 paging service), and acknowledges
the page; triage accepts; the pipeline commits the fix to the starter signature
repository, builds and verifies a base; two engineers sign off each stage; the base goes to the
internal, canary and customer channels; every notice reaches a local Slack server and a local SMTP
server that the demo starts; finally the timeline and `audit verify`. Exits non-zero if any step fails.

It runs `relreq serve` on its own data directory (`$RR_DATA_DIR/demo`, recreated each time) and its
own ports, so it never touches your data or a server you already run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import git
import httpx
from rich.console import Console

from artifacts.corpus import load_corpus
from artifacts.starter import init_sigrepo
from release_requests import runtime
from release_requests.audit.service import Actor
from release_requests.cli.output import CliError, local_time
from release_requests.config import get_config
from release_requests.customers.schemas import CustomerCreate
from release_requests.customers.service import assign_tam, create_customer
from release_requests.people.service import PersonCreate, create_person, issue_token
from release_requests.routing.service import LeaveCreate, ShiftCreate, add_leave, add_shifts, set_fallback
from release_requests.runtime import local_session
from release_requests.server import wait_until_healthy
from release_requests.settings import get_settings

console = Console(highlight=False, width=None if sys.stdout.isatty() else 150)
MOSCOW = ZoneInfo("Europe/Moscow")
STEP_TIMEOUT = 240.0
DEMO_ROUTING_KEY = "demo0routing0key0000000000000000"  # Events v2 integration keys are 32 characters
FP_RULE = "trojan.Trojan_Win32_Dropper_001"
# the bank's shared channel, the engineering channel, and the staff's direct messages
DEMO_SLACK_CHANNELS = (
    "moscow-bank-support",
    "msa-engineering",
    "UTANYA01",
    "UBORIS01",
    "UOLGA001",
    "UBILL001",
    "URITA001",
)


def last_sunday_2am_moscow(now: datetime) -> datetime:
    local = now.astimezone(MOSCOW)
    candidate = (local - timedelta(days=(local.weekday() - 6) % 7)).replace(hour=2, minute=0, second=0, microsecond=0)
    return candidate if candidate <= local else candidate - timedelta(days=7)


class Story:
    def __init__(self, api: str) -> None:
        self.api = api
        self.tokens: dict[str, str] = {}
        self.seen = 0

    def call(self, who: str, method: str, path: str, **kwargs):
        response = httpx.request(
            method, self.api + path, headers={"Authorization": f"Bearer {self.tokens[who]}"}, timeout=60, **kwargs
        )
        if response.is_error:
            raise CliError(f"{method} {path} as {who}: HTTP {response.status_code} {response.text[:300]}")
        return response.json()

    def say(self, text: str) -> None:
        console.print(f"\n[bold cyan]▶ {text}[/]")

    def show_new_events(self, request_id: str) -> None:
        events = self.call("olga", "GET", f"/api/v1/requests/{request_id}/timeline")
        for event in events[self.seen :]:
            detail = event["reason"] or ""
            after = event["after"] or {}
            if event["action"].startswith("notification."):
                detail = f"{after.get('event', '')} → {after.get('channel', '')}:{after.get('recipient', '')}"
            elif "status" in after:
                detail = f"status {after['status']}" + (f" — {detail}" if detail else "")
            who = event["actor"][:40]
            console.print(f"  [dim]{local_time(event['at'])}[/]  {event['action']:<28} [dim]{who}[/]  {detail[:110]}")
        self.seen = len(events)

    def wait_for(self, request_id: str, status: str, *, stage: str | None = None) -> dict:
        deadline = time.monotonic() + STEP_TIMEOUT
        while time.monotonic() < deadline:
            self.show_new_events(request_id)
            pipeline = self.call("olga", "GET", f"/api/v1/requests/{request_id}/pipeline")
            waiting = next((s for s in pipeline["stage_runs"] if s["status"] == "awaiting"), None)
            if pipeline["status"] == status and (stage is None or (waiting and waiting["stage"] == stage)):
                return pipeline
            if pipeline["status"] in ("failed", "cancelled", "rejected"):
                build = pipeline["build"] or {}
                raise CliError(f"{request_id} went to {pipeline['status']}: {build.get('error') or 'see timeline'}")
            time.sleep(1)
        raise CliError(f"{request_id} did not reach {status}{f' ({stage})' if stage else ''} in {STEP_TIMEOUT:.0f} s")


def _setup(data_dir: Path, sample: Path) -> dict[str, str]:
    """Customer, people, rotation and the starter signature repository (local admin commands)."""
    admin = Actor.system("demo")
    repo = data_dir / "sigrepo"  # `relreq serve` creates the starter repository on its first start
    if not repo.exists():
        init_sigrepo(path=repo, author="Signature Team <signatures@vendor.example>")
    corpus = load_corpus(git.Repo(repo).head.commit)
    sample.write_bytes(
        b"MZ MoscowBank Payroll 4.2.1 " + next(s for s in corpus.malicious if s.expect == FP_RULE).render()
    )
    tokens = {}
    with local_session() as s:
        create_customer(
            s,
            actor=admin,
            data=CustomerCreate(
                id="moscow-bank",
                name="Moscow Bank",
                tier="enterprise",
                timezone="Europe/Moscow",
                country="RU",
                slack_channel="moscow-bank-support",
                email_contacts=["soc@moscow-bank.example"],
                language="ru",
            ),
        )
        people = {
            "tanya": PersonCreate(
                name="Tanya Smirnova",
                role="tam",
                email="tanya@vendor.example",
                timezone="Europe/Moscow",
                country="RU",
                slack_user_id="UTANYA01",
            ),
            "boris": PersonCreate(
                name="Boris Ivanov",
                role="duty_manager",
                email="boris@vendor.example",
                timezone="Europe/Moscow",
                slack_user_id="UBORIS01",
            ),
            "olga": PersonCreate(
                name="Olga Triage", role="triage", email="olga@vendor.example", slack_user_id="UOLGA001"
            ),
            "bill": PersonCreate(
                name="Bill Builder", role="build_engineer", email="bill@vendor.example", slack_user_id="UBILL001"
            ),
            "rita": PersonCreate(
                name="Rita Release", role="release_manager", email="rita@vendor.example", slack_user_id="URITA001"
            ),
        }
        for key, data in people.items():
            person = create_person(s, actor=admin, data=data)
            tokens[key] = issue_token(s, actor=admin, person=person)
            if key == "tanya":
                assign_tam(s, actor=admin, customer_id="moscow-bank", person=person)
                today = datetime.now(MOSCOW).date()
                if today.weekday() < 5:  # a TAM at work when Sunday's call is logged would take it unpaged
                    leave = LeaveCreate(first_day=today, last_day=today, reason="demo: away when the call is logged")
                    add_leave(s, actor=admin, person=person, data=leave)
            if key == "boris":
                start = last_sunday_2am_moscow(datetime.now(MOSCOW)) - timedelta(hours=14)
                add_shifts(
                    s, actor=admin, person=person, data=ShiftCreate(starts_at=start, ends_at=start + timedelta(days=7))
                )
                set_fallback(s, actor=admin, person=person)
    return tokens


def run() -> None:
    try:
        # deferred and guarded: the local Slack and SMTP servers are not product code; the `demo` extra has them
        from devservers import LocalEventsV2, LocalSlack, LocalSmtp, free_port
    except ImportError as exc:
        raise CliError(
            f"relreq demo needs the local Slack and SMTP servers ({exc.name or exc} is missing): "
            "install release-requests[demo] (pip install -e '.[demo]' in a checkout; make installs it)"
        ) from None
    base = get_settings().data_dir.resolve()
    data_dir = base / "demo"
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    os.environ["RR_DATA_DIR"] = str(data_dir)
    os.environ.pop("RR_DATABASE_URL", None)
    for cache in (get_settings, runtime.session_factory, get_config):
        cache.cache_clear()
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    slack = LocalSlack(token="xoxb-demo", channels=DEMO_SLACK_CHANNELS).start()
    smtp = LocalSmtp(user="relreq", password="demo-pass", starttls=True).start()
    pager = LocalEventsV2(routing_keys=(DEMO_ROUTING_KEY,), tls=False).start()  # plain http: loopback only
    env = {
        **os.environ,
        "RR_DATA_DIR": str(data_dir),
        "RR_PREFECT_PORT": str(free_port()),
        "RR_SLACK_TOKEN": "xoxb-demo",
        "RR_SLACK_BASE_URL": slack.base_url,
        "RR_SMTP_URL": smtp.url,
        "RR_PAGING_WEBHOOK_URL": pager.url,
        "RR_PAGING_ROUTING_KEY": DEMO_ROUTING_KEY,
        "RR_PUBLIC_URL": api,
    }
    env.pop("PREFECT_API_URL", None)
    started = time.monotonic()
    console.print(f"[bold]release-requests demo[/] — data in {data_dir}, API on {api}")
    console.print(f"local Slack {slack.base_url}, local SMTP {smtp.host}:{smtp.port} (STARTTLS + AUTH)")
    console.print(f"local paging service (PagerDuty Events v2) {pager.url}")
    serve = subprocess.Popen(
        [str(Path(sys.executable).parent / "relreq"), "serve", "--port", str(port)],
        env=env,
        stdout=(data_dir / "serve.log").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _story(api, data_dir, slack, smtp, pager, serve)
        console.print(f"\n[bold green]demo finished in {time.monotonic() - started:.0f} s[/]")
    finally:
        serve.terminate()
        try:
            serve.wait(60)
        except subprocess.TimeoutExpired:
            serve.kill()
        slack.stop()
        smtp.stop()
        pager.stop()


def _story(api: str, data_dir: Path, slack, smtp, pager, serve: subprocess.Popen) -> None:
    story = Story(api)
    story.say("Starting relreq serve (embedded Postgres, Prefect server, flows, API)")

    try:
        wait_until_healthy(f"{api}/healthz", timeout=120, process=serve)
    except RuntimeError as exc:
        raise CliError(f"relreq serve: {exc}; see {data_dir / 'serve.log'}") from None
    story.say("Admin: customer Moscow Bank (Europe/Moscow, enterprise), TAM Tanya, duty manager Boris, engineers")
    sample = data_dir / "payroll.exe"
    story.tokens = _setup(data_dir, sample)
    received = last_sunday_2am_moscow(datetime.now(MOSCOW))
    story.say(f"Sunday {received:%Y-%m-%d %H:%M} Moscow time: the bank phones in a critical false positive")
    created = story.call(
        "boris",
        "POST",
        "/api/v1/requests",
        json={
            "customer_id": "moscow-bank",
            "kind": "false_positive",
            "severity": 1,
            "channel": "phone",
            "title": "Payroll application quarantined on all workstations",
            "detection_name": FP_RULE,
            "product": "endpoint-agent",
            "product_version": "11.2.0",
            "received_at": received.isoformat(),
            "caller_name": "Ivan Petrov, Moscow Bank SOC",
            "callback_number": "+7 495 123-45-67 ext. 12",
        },
    )
    request_id = created["id"]
    with sample.open("rb") as f:
        story.call("boris", "POST", f"/api/v1/requests/{request_id}/samples", files={"file": ("payroll.exe", f)})
    console.print(f"  {request_id}: owner {created['owner']}; SLA due {created['sla']['due_at_local']}")
    page = story.call("boris", "GET", f"/api/v1/requests/{request_id}/page")
    console.print(f"  paged {page['paged']['name']} ({page['paged']['role']}): Slack, e-mail, paging service")
    story.say("Boris acknowledges the page (as `relreq page ack` does): the escalation stops, the SLA clock does not")
    story.call("boris", "POST", f"/api/v1/requests/{request_id}/page/acknowledge")
    story.show_new_events(request_id)
    story.say("Triage (Olga) accepts it: the pipeline builds the fix by itself")
    story.call("olga", "POST", f"/api/v1/requests/{request_id}/triage", json={"decision": "accept"})
    pipeline = story.wait_for(request_id, "awaiting_approval", stage="internal")
    build = pipeline["build"]
    console.print(
        f"  base {build['version']} from commit {build['commit'][:12]} on {build['branch']}: verification passed"
    )
    for stage, signers in (("internal", ["bill"]), ("canary", ["bill", "rita"]), ("customer", ["bill", "rita"])):
        story.wait_for(request_id, "awaiting_approval", stage=stage)
        story.say(f"Sign-off of stage '{stage}' by {', '.join(signers)}")
        for who in signers:
            story.call(who, "POST", f"/api/v1/requests/{request_id}/approvals", json={"stage": stage})
        following = {"internal": "canary", "canary": "customer", "customer": "global"}[stage]
        story.wait_for(request_id, "awaiting_approval", stage=following)
    console.print("  the customer has the fix; release to everyone ('global') now waits for two release managers")
    story.say("Waiting for every notice to be delivered")
    _wait_delivered(story, request_id)
    story.show_new_events(request_id)
    story.say("What the bank saw in its Slack channel and mailbox")
    for message in slack.all_messages():
        channel = slack.channels[message["channel"]]["name"]
        console.print(f"  slack {channel}: {message.get('text', '')[:110]}")
    for mail in smtp.received:
        console.print(f"  mail to {', '.join(mail.rcpt_tos)}: {mail.message['Subject']}")
    for incident in pager.incidents:
        console.print(f"  paging service incident {incident.dedup_key}: {' → '.join(incident.log)}")
    story.say("Audit log")
    result = subprocess.run(
        [str(Path(sys.executable).parent / "relreq"), "audit", "verify"],
        capture_output=True,
        text=True,
        env={**os.environ, "RR_DATA_DIR": str(data_dir)},
    )
    console.print("  " + (result.stdout or result.stderr).strip())
    if result.returncode != 0:
        raise CliError("audit verify failed")


def _wait_delivered(story: Story, request_id: str) -> None:
    deadline = time.monotonic() + STEP_TIMEOUT
    while time.monotonic() < deadline:
        rows = story.call("olga", "GET", "/api/v1/notifications", params={"request_id": request_id})
        pending = [r for r in rows if r["status"] not in ("sent", "dead", "skipped")]
        dead = [r for r in rows if r["status"] == "dead"]
        if dead:
            raise CliError(f"{len(dead)} notices dead-lettered: {dead[0].get('last_error')}")
        if rows and not pending:
            console.print(f"  {len(rows)} notices delivered")
            return
        time.sleep(1)
    raise CliError("notices were not all delivered in time")
