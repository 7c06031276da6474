"""The escalation chain and its next step: pure decisions on people (no database)."""

from __future__ import annotations

from release_requests.paging.chain import build_chain, head_of_support_problem, next_step
from release_requests.people.models import Person


def person(id_: int, role: str = "duty_manager", active: bool = True) -> Person:
    return Person(id=id_, name=f"P{id_}", role=role, active=active)


def test_the_chain_is_on_duty_then_fallback_then_head_of_support():
    chain = build_chain(routed=person(1), basis="shift", fallback=person(2), head=person(3, "admin"))
    assert chain == [
        {"person_id": 1, "name": "P1", "role": "on duty"},
        {"person_id": 2, "name": "P2", "role": "duty fallback"},
        {"person_id": 3, "name": "P3", "role": "head of support"},
    ]


def test_a_person_is_paged_once_and_inactive_people_are_skipped():
    fallback = person(2)
    chain = build_chain(routed=fallback, basis="fallback", fallback=fallback, head=person(3, "admin", active=False))
    assert chain == [{"person_id": 2, "name": "P2", "role": "duty fallback"}]
    assert build_chain(routed=person(1), basis="shift", fallback=None, head=person(1)) == [
        {"person_id": 1, "name": "P1", "role": "on duty"}
    ]


def test_a_tam_at_work_has_no_chain_and_nobody_on_duty_starts_with_the_head():
    assert build_chain(routed=person(9, "tam"), basis="tam", fallback=person(2), head=person(3)) == []
    assert build_chain(routed=None, basis="nobody", fallback=None, head=person(3, "admin")) == [
        {"person_id": 3, "name": "P3", "role": "head of support"}
    ]
    assert build_chain(routed=None, basis="nobody", fallback=None, head=None) == []


def test_next_step_skips_people_deactivated_since_and_ends():
    chain = build_chain(routed=person(1), basis="shift", fallback=person(2), head=person(3, "admin"))
    assert next_step(chain, 0) == 1
    assert next_step(chain, 0, inactive={2}) == 2
    assert next_step(chain, 1, inactive={3}) is None
    assert next_step(chain, 2) is None


def test_a_misconfigured_head_of_support_is_a_problem_in_words():
    assert head_of_support_problem("", None) is None
    assert head_of_support_problem("boss@vendor.example", person(3, "admin")) is None
    assert "names nobody" in head_of_support_problem("boss@vendor.example", None)
    assert "deactivated" in head_of_support_problem("3", person(3, "admin", active=False))
    refused = head_of_support_problem("3", person(3, "build_engineer"))
    assert "has role 'build_engineer'" in refused and "duty_manager" in refused
