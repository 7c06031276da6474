"""The customer's licence grants as plain data, for `artifacts` (which must not know about the DB)."""

from __future__ import annotations

from release_requests.customers.service import get_customer
from release_requests.errors import NotFound
from release_requests.runtime import local_session


def licence_grants_for(customer_id: str) -> list[dict]:
    """[{"product": ..., "versions": ...}] for one customer; LookupError if there is no such customer."""
    with local_session() as session:
        try:
            return list(get_customer(session, customer_id=customer_id).licensed_products)
        except NotFound as exc:
            raise LookupError(exc.message) from None
