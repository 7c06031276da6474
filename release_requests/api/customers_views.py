"""/api/v1/customers: staff read customer records; customer users read their own."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from release_requests.access import needs
from release_requests.api.deps import AppContext, caller, context
from release_requests.customers import service
from release_requests.customers.schemas import CustomerCreate, CustomerOut
from release_requests.people.models import Person

router = APIRouter(prefix="/api/v1/customers", tags=["customers"])


@router.get("", response_model=list[CustomerOut], openapi_extra=needs("customer.read"))
def list_customers(me: Person = Depends(caller), ctx: AppContext = Depends(context)):
    with ctx.unit_of_work() as session:
        return service.customers_for(session, actor=me)


@router.get("/{customer_id}", response_model=CustomerOut, openapi_extra=needs("customer.read"))
def show_customer(customer_id: str, me: Person = Depends(caller), ctx: AppContext = Depends(context)):
    with ctx.unit_of_work() as session:
        return service.customer_for(session, actor=me, customer_id=customer_id)


@router.post("", status_code=201, response_model=CustomerOut, openapi_extra=needs("customer.create"))
def create_customer(body: CustomerCreate, me: Person = Depends(caller), ctx: AppContext = Depends(context)):
    with ctx.unit_of_work() as session:
        return service.create_customer_as(session, actor=me, data=body)
