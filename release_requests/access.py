"""Who may see and do what: one table, one check, one visibility rule. API, CLI and Slack go through the
services, and the services ask here.

- `RULES` maps an action (e.g. `request.triage`) to the roles that may do it and a one-line description.
  A few entries are not calls but what a role makes a person (`vendor.staff`, `customers.see_all`,
  `duty.serve`, …), and four name the credential that authenticates a route needing no person
  (`public`, `update.download`, `telemetry.report`, `slack.interaction`).
- `authorize(person, action)` raises Forbidden (403) naming the action and the roles allowed.
- Finer rules that depend on data stay in their services, applied after the table said yes: which roles
  sign which stage (config/stages.toml), separation of duties, leave for yourself vs for others.
- Visibility: a customer's users see their own customer, a TAM the customers assigned to them, other staff
  every customer. Another customer's request, sample, channel or client is *not found*, never *forbidden*:
  a customer must not learn that somebody else's id exists.

Every route declares its action (`needs(...)` → OpenAPI `x-action`); docs/api.md carries the generated
role × action table and the route list: `python -m release_requests.api.reference --update docs/api.md`.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from release_requests.customers.models import TamAssignment
from release_requests.errors import Forbidden
from release_requests.people.models import Person

ROLES = (
    "admin",
    "tam",
    "duty_manager",
    "triage",
    "build_engineer",
    "release_manager",
    "customer",
    "emergency",
)
EVERYONE = frozenset(ROLES)
_STAFF = EVERYONE - {"customer"}
_FILERS = frozenset({"customer", "tam", "duty_manager", "triage", "admin"})
_CUSTOMER_SIDE = frozenset({"customer", "tam", "duty_manager", "admin"})  # act for the customer on their request
_MANAGERS = frozenset({"duty_manager", "admin"})

# What authenticates a call: a person's API token (the role decides), or something else (no person).
TOKEN = "API token"
CREDENTIALS = (TOKEN, "none", "none or API token", "enrolled client", "Slack signature")


@dataclass(frozen=True)
class Rule:
    roles: frozenset[str]
    description: str  # completes "role 'x' may not …"
    credential: str = TOKEN
    capability: bool = False  # what a role makes a person (checked on the person named), not a call

    def __post_init__(self) -> None:
        object.__setattr__(self, "roles", frozenset(self.roles))
        if not self.roles <= EVERYONE:
            raise ValueError(f"unknown roles {sorted(self.roles - EVERYONE)}")
        if self.credential not in CREDENTIALS:
            raise ValueError(f"unknown credential '{self.credential}' (one of: {', '.join(CREDENTIALS)})")
        if not self.roles and self.credential == TOKEN:
            raise ValueError("a call needing an API token must allow some role")


RULES: dict[str, Rule] = {
    # requests
    "request.file": Rule(_FILERS, "file requests"),
    "request.read": Rule(EVERYONE, "read requests (their samples, timeline and pipeline)"),
    "request.triage": Rule({"triage", "duty_manager", "admin"}, "triage requests"),
    "request.respond": Rule({"tam", "triage", "duty_manager", "admin"}, "respond to customers"),
    "request.change_severity": Rule({"tam", "triage", "duty_manager", "admin"}, "change severity"),
    "request.assign": Rule({"tam", "triage", "duty_manager", "admin"}, "assign requests to an engineer"),
    "request.answer": Rule(_CUSTOMER_SIDE, "answer questions"),
    "request.cancel": Rule(_CUSTOMER_SIDE, "cancel requests"),
    "request.close": Rule(_CUSTOMER_SIDE, "close requests"),
    "request.split": Rule(_MANAGERS, "split requests out of a shared build"),
    "sample.add": Rule(_FILERS | {"build_engineer"}, "add samples"),
    "sample.fetch": Rule(EVERYONE, "fetch samples"),
    "queue.read": Rule(_STAFF, "read the work queue"),
    # TAMs see their own customers only, and a diff names every customer's allowlist entries and requests
    "pipeline.diff": Rule(_STAFF - {"tam"}, "read what a build changes against the channel it goes to next"),
    # pipeline
    "fix.provide": Rule({"build_engineer", "admin"}, "provide fixes"),
    "fix.revert": Rule({"release_manager", "admin", "emergency"}, "revert fixes"),
    "stage.sign": Rule({"build_engineer", "release_manager"}, "sign off release stages"),
    "stage.override": Rule({"emergency"}, "override sign-offs"),
    # customers
    "customer.read": Rule(EVERYONE, "read customer records"),
    "customer.create": Rule({"admin"}, "create customers"),
    "preferences.read": Rule(EVERYONE, "read notification preferences"),
    "preferences.change": Rule({"customer", "tam", "admin"}, "change notification preferences"),
    # duty and leave
    "duty.read": Rule(_STAFF, "read the duty rotation"),
    "duty.plan": Rule(_MANAGERS, "plan duty shifts"),
    "duty.set_fallback": Rule(_MANAGERS, "set the duty fallback"),
    "leave.record_own": Rule(_STAFF, "record leave"),
    "leave.record_others": Rule(_MANAGERS, "record other people's leave"),
    # notifications
    "notification.read": Rule(_STAFF, "read the notification outbox"),
    "notification.retry": Rule(_MANAGERS, "retry notifications"),
    # releases
    "channel.read": Rule(EVERYONE, "read update channels and their history"),
    "channel.revert": Rule({"release_manager", "admin", "emergency"}, "revert update channels"),
    "channel.resume": Rule({"release_manager", "admin"}, "resume halted channels"),
    "client.enrol": Rule(EVERYONE, "enrol update clients"),
    "client.read": Rule(EVERYONE, "list enrolled update clients"),
    "client.revoke": Rule(EVERYONE, "revoke update clients"),
    "known_clean.add": Rule({"admin"}, "mark files known-clean"),
    # reports and Health Checks
    "report.read": Rule(EVERYONE, "read reports (the daily digest, customer reports; a customer's users: their own)"),
    "report.preferences": Rule({"customer", "tam", "admin"}, "change a customer's report preferences"),
    "report.note": Rule({"tam", "admin"}, "write the TAM's notes for a customer's report"),
    "digest.subscribe": Rule(EVERYONE, "choose whether and when they receive the daily digest"),
    "healthcheck.read": Rule(EVERYONE, "read Health Checks"),
    "healthcheck.book": Rule({"tam", "duty_manager", "admin"}, "book, confirm, reschedule or cancel Health Checks"),
    "healthcheck.conduct": Rule(
        {"tam", "triage", "build_engineer", "duty_manager", "admin"},
        "conduct Health Checks: start, record findings, deliver the report",
    ),
    # intake by e-mail, and paging
    "mail.ingest": Rule(_MANAGERS, "hand a raw e-mail message to intake (a mail system's pipe)"),
    "mail.read": Rule({"triage", "duty_manager", "admin"}, "read the support mailbox and what became of each message"),
    "mail.assign": Rule(_MANAGERS, "file or attach a held e-mail message by hand"),
    "page.read": Rule(_STAFF, "read pages and their escalation"),
    "page.acknowledge": Rule({"tam", "triage", "duty_manager", "admin"}, "acknowledge pages (stops the escalation)"),
    # people
    "profile.change": Rule(EVERYONE, "change their own display language"),
    # what a role makes a person
    "vendor.staff": Rule(
        _STAFF,
        "count as vendor staff: see staff-only details and channels; enrol update clients for the vendor",
        capability=True,
    ),
    "customers.see_all": Rule(
        _STAFF - {"tam"}, "see every customer (customer users see their own, TAMs the assigned ones)", capability=True
    ),
    "request.be_assignee": Rule(_STAFF, "be assigned a request in triage", capability=True),
    "customer.member": Rule(
        {"customer"}, "belong to one customer (its users; everyone else is the vendor's)", capability=True
    ),
    "customer.be_tam": Rule({"tam"}, "be assigned to a customer as its TAM", capability=True),
    "page.be_paged": Rule(
        {"tam", "triage", "duty_manager", "admin"}, "be in a page's escalation chain (head of support)", capability=True
    ),
    "healthcheck.engineer": Rule(
        {"tam", "triage", "build_engineer", "duty_manager", "admin"},
        "be the engineer of a Health Check",
        capability=True,
    ),
    "duty.serve": Rule(_MANAGERS, "take duty shifts or be the duty fallback", capability=True),
    "duty.by_shifts": Rule(
        {"duty_manager"}, "be at work by duty shifts (or as the fallback), not by working hours", capability=True
    ),
    # no person: what authenticates the call instead
    "public": Rule(
        frozenset(), "call without a credential (health check, API index, update signing key, sign-in page)", "none"
    ),
    "update.download": Rule(
        frozenset(),
        "download a channel's manifest and files (a private channel is 404 unless the token may see it)",
        "none or API token",
    ),
    "telemetry.report": Rule(frozenset(), "report detections (the enrolled client's credential)", "enrolled client"),
    "slack.interaction": Rule(
        frozenset(),
        "press a Slack decision button (signed by Slack; the linked person then needs `stage.sign`)",
        "Slack signature",
    ),
}


def rule(action: str) -> Rule:
    try:
        return RULES[action]
    except KeyError:
        raise KeyError(f"no rule for action '{action}' in release_requests.access.RULES") from None


def role_allows(role: str, action: str) -> bool:
    return role in rule(action).roles


def allows(person: Person, action: str) -> bool:
    """Does the table let this person's role do `action`?"""
    return role_allows(person.role, action)


def authorize(person: Person, action: str) -> None:
    """Forbidden (403, naming the action and the roles allowed) unless the table lets this role do it."""
    allowed = rule(action)
    if person.role not in allowed.roles:
        roles = sorted(allowed.roles)
        raise Forbidden(
            f"role '{person.role}' may not {allowed.description} (allowed: {', '.join(roles)})",
            action=action,
            allowed=roles,
        )


def refuse(action: str, message: str, *, source: str) -> Forbidden:
    """A finer rule's refusal, after the table allowed `action`; `source` names the rule (e.g. a policy file)."""
    return Forbidden(message, action=action, rule=source)


def is_staff(person: Person | None) -> bool:
    return person is not None and allows(person, "vendor.staff")


def visible_customer_ids(session: Session, person: Person) -> frozenset[str] | None:
    """The customers whose requests this person can see; None means all of them."""
    if allows(person, "customers.see_all"):
        return None
    if allows(person, "customer.member"):
        return frozenset({person.customer_id})
    if allows(person, "customer.be_tam"):
        rows = session.scalars(select(TamAssignment.customer_id).where(TamAssignment.person_id == person.id))
        return frozenset(rows)
    return frozenset()


def can_see_customer(session: Session, person: Person, customer_id: str) -> bool:
    visible = visible_customer_ids(session, person)
    return visible is None or customer_id in visible


# --------------------------------------------------------------------------------------------------
# Routes declare their action (docs/api.md lists them: release_requests/api/reference.py)


def needs(action: str, *also: str) -> dict:
    """`openapi_extra` of a route: the action it checks (`x-action`) and those it checks depending on its input
    (`x-also`, e.g. recording somebody else's leave). Unknown actions fail at import."""
    for name in (action, *also):
        rule(name)
    return {"x-action": action, **({"x-also": list(also)} if also else {})}
