"""/api/v1/customers: staff read customer records; customer users read their own."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from release_requests import access
from release_requests.api.deps import AppContext, caller, context
from release_requests.customers import service
from release_requests.customers.schemas import CustomerCreate, CustomerOut
from release_requests.errors import NotFound
from release_requests.people.models import Person
from release_requests.people.service import actor_of

router = APIRouter(prefix="/api/v1/customers", tags=["customers"])


@router.get("", response_model=list[CustomerOut])
def list_customers(me: Person = Depends(caller), ctx: AppContext = Depends(context)):
    with ctx.unit_of_work() as session:
        return [c for c in service.list_customers(session) if access.can_see_customer(session, me, c.id)]


@router.get("/{customer_id}", response_model=CustomerOut)
def show_customer(customer_id: str, me: Person = Depends(caller), ctx: AppContext = Depends(context)):
    with ctx.unit_of_work() as session:
        if not access.can_see_customer(session, me, customer_id):
            raise NotFound(f"no customer '{customer_id}'")
        return service.get_customer(session, customer_id=customer_id)


@router.post("", status_code=201, response_model=CustomerOut)
def create_customer(body: CustomerCreate, me: Person = Depends(caller), ctx: AppContext = Depends(context)):
    access.require_role(me, access.ADMINISTERS, to="create customers")
    with ctx.unit_of_work() as session:
        return service.create_customer(session, actor=actor_of(me), data=body)
