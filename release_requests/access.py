"""Who may see and do what. One place, so API, CLI and Slack apply the same rules.

Another customer's request is reported as *not found*, never *forbidden*: a customer must not learn
that somebody else's request id exists.
"""

from __future__ import annotations

from collections.abc import Iterable

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
SEES_ALL = frozenset({"admin", "duty_manager", "triage", "build_engineer", "release_manager", "emergency"})
STAFF = SEES_ALL | {"tam"}
FILES_REQUESTS = frozenset({"customer", "tam", "duty_manager", "triage", "admin"})
TRIAGES = frozenset({"triage", "duty_manager", "admin"})
RESPONDS = frozenset({"tam", "duty_manager", "triage", "admin"})
ADMINISTERS = frozenset({"admin"})


def require_role(person: Person, allowed: Iterable[str], *, to: str) -> None:
    allowed = frozenset(allowed)
    if person.role not in allowed:
        raise Forbidden(f"role '{person.role}' may not {to} (allowed: {', '.join(sorted(allowed))})")


def visible_customer_ids(session: Session, person: Person) -> frozenset[str] | None:
    """The customers whose requests this person can see; None means all of them."""
    if person.role in SEES_ALL:
        return None
    if person.role == "customer":
        return frozenset({person.customer_id})
    if person.role == "tam":
        rows = session.scalars(select(TamAssignment.customer_id).where(TamAssignment.person_id == person.id))
        return frozenset(rows)
    return frozenset()


def can_see_customer(session: Session, person: Person, customer_id: str) -> bool:
    visible = visible_customer_ids(session, person)
    return visible is None or customer_id in visible
