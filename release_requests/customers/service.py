"""Customer records: creation, lookup, TAM assignment. Every change is audited in the same transaction.

`create_customer`, `get_customer`, `list_customers` and `assign_tam` are the trusted primitives (local admin
commands, tests, the demo); a person asking over the API goes through `customers_for`, `customer_for` and
`create_customer_as`, which apply the permission table and visibility (`release_requests.access`).
"""

from __future__ import annotations

import re

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from release_requests import access
from release_requests.audit.service import Actor, record
from release_requests.customers.models import Customer, TamAssignment
from release_requests.customers.schemas import CertificatePeriod, CustomerCreate, CustomerOut
from release_requests.errors import Conflict, InvalidInput, NotFound
from release_requests.people.models import Person
from release_requests.people.service import actor_of


def _slug(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40].strip("-")
    return slug if len(slug) >= 2 else f"customer-{slug}".strip("-")


def create_customer(session: Session, *, actor: Actor, data: CustomerCreate) -> Customer:
    customer_id = data.id or _slug(data.name)
    if session.get(Customer, customer_id) is not None:
        raise Conflict(f"customer id '{customer_id}' is taken; choose another with --id", field="id")
    if session.scalar(select(Customer.id).where(Customer.name == data.name)):
        raise Conflict(f"a customer named '{data.name}' already exists", field="name")
    values = data.model_dump(exclude={"id"}, mode="json")  # JSON for the JSONB columns; dates stay dates
    values.update(certificate_start=data.certificate_start, certificate_end=data.certificate_end)
    customer = Customer(id=customer_id, **values)
    session.add(customer)
    session.flush()
    record(
        session,
        actor=actor,
        action="customer.created",
        entity_type="customer",
        entity_id=customer.id,
        after=CustomerOut.model_validate(customer).model_dump(mode="json"),
    )
    return customer


def get_customer(session: Session, *, customer_id: str) -> Customer:
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise NotFound(f"no customer '{customer_id}'")
    return customer


def list_customers(session: Session) -> list[Customer]:
    return list(session.scalars(select(Customer).order_by(Customer.id)))


def assign_tam(session: Session, *, actor: Actor, customer_id: str, person: Person) -> None:
    get_customer(session, customer_id=customer_id)
    if not access.allows(person, "customer.be_tam"):
        raise InvalidInput(f"{person.name} has role '{person.role}', not 'tam'", field="role")
    if session.get(TamAssignment, (customer_id, person.id)) is not None:
        return
    session.add(TamAssignment(customer_id=customer_id, person_id=person.id))
    record(
        session,
        actor=actor,
        action="customer.tam_assigned",
        entity_type="customer",
        entity_id=customer_id,
        after={"tam_id": person.id, "tam": person.name},
    )


def set_certificate(session: Session, *, actor: Actor, customer_id: str, period: CertificatePeriod) -> Customer:
    """Set (or renew) the customer's support certificate period: its years bound the Health Checks.

    The bare record: a change goes through `healthchecks.service.change_certificate`, which re-cuts the
    certificate years of the customer's Health Checks in the same transaction (Health Checks sit above
    customers, so the combined operation lives there)."""
    customer = get_customer(session, customer_id=customer_id)
    before = {"certificate_start": customer.certificate_start, "certificate_end": customer.certificate_end}
    customer.certificate_start, customer.certificate_end = period.certificate_start, period.certificate_end
    session.flush()
    record(
        session,
        actor=actor,
        action="customer.certificate_set",
        entity_type="customer",
        entity_id=customer.id,
        before=before,
        after=period.model_dump(),
    )
    return customer


def customers_for(session: Session, *, actor: Person) -> list[Customer]:
    """The customers this person may see: customer users their own, TAMs those assigned to them, staff all."""
    access.authorize(actor, "customer.read")
    query = select(Customer).order_by(Customer.id)
    visible = access.visible_customer_ids(session, actor)
    if visible is not None:
        query = query.where(Customer.id.in_(visible))
    return list(session.scalars(query))


def customer_for(session: Session, *, actor: Person, customer_id: str) -> Customer:
    """One customer this person may see; another customer's is not found (its existence is not revealed)."""
    access.authorize(actor, "customer.read")
    if not access.can_see_customer(session, actor, customer_id):
        raise NotFound(f"no customer '{customer_id}'")
    return get_customer(session, customer_id=customer_id)


def save_customer_settings(
    session: Session,
    *,
    actor: Person,
    customer: Customer,
    row: object | None,
    model: type,
    values: dict,
    before: dict | None,
    action: str,
) -> object:
    """Write `values` onto a customer's one row of settings (`model`, keyed by `customer_id`; created on the
    first save) and audit the change from `before` (None: nothing was stored yet) in the same transaction.
    Returns the row."""
    if row is None:
        row = model(customer_id=customer.id)
        session.add(row)
    for name, value in values.items():
        setattr(row, name, value)
    row.updated_at = func.now()
    session.flush()
    record(
        session,
        actor=actor_of(actor),
        action=action,
        entity_type="customer",
        entity_id=customer.id,
        before=before,
        after=values,
    )
    return row


def create_customer_as(session: Session, *, actor: Person, data: CustomerCreate) -> Customer:
    access.authorize(actor, "customer.create")
    return create_customer(session, actor=actor_of(actor), data=data)


_TAMS = (  # built once: every filing asks (routing)
    select(Person)
    .join(TamAssignment, TamAssignment.person_id == Person.id)
    .where(TamAssignment.customer_id == bindparam("customer_id"), Person.active.is_(True))
    .order_by(TamAssignment.created_at)
)


def tams_of(session: Session, *, customer_id: str) -> list[Person]:
    return list(session.scalars(_TAMS, {"customer_id": customer_id}))
