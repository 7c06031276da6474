from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.conftest import User, World


@dataclass
class Cast:
    customer_id: str
    other_customer_id: str
    tam: User
    customer_user: User
    other_customer_user: User
    triage: User
    build_engineer: User
    admin: User


@pytest.fixture
def cast(world: World) -> Cast:
    customer_id, other = world.customer(), world.customer()
    return Cast(
        customer_id=customer_id,
        other_customer_id=other,
        tam=world.user("tam", tam_for=[customer_id]),
        customer_user=world.user("customer", customer_id),
        other_customer_user=world.user("customer", other),
        triage=world.user("triage"),
        build_engineer=world.user("build_engineer"),
        admin=world.user("admin"),
    )


def new_request(world: World, user: User, customer_id: str, **overrides) -> dict:
    body = {
        "customer_id": customer_id,
        "kind": "false_positive",
        "severity": 1,
        "channel": "phone",
        "title": "Payroll application detected as Trojan.Win32.Generic",
    }
    body.update(overrides)
    with world.client(user) as c:
        response = c.post("/api/v1/requests", json=body)
    assert response.status_code == 201, response.text
    return response.json()
