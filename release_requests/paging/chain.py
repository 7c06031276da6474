"""Who a page wakes, in which order, and who comes next: pure decisions on people already loaded.

The decisions, written down once:

- The chain is fixed when the page starts: the person routing chose (the manager on a duty shift, or the
  duty fallback when no shift covers the moment), then the duty fallback, then the head of support
  (`config/paging.toml`). A TAM at work never pages (routing's basis `tam`): there is no chain then.
- A person appears once, at their first place (the fallback routed to in a rotation gap is not paged twice).
- Inactive people are skipped, and so is a head of support who may not be paged (`page.be_paged`): a
  misconfigured `head_of_support` is a problem to report (`head_of_support_problem`), never a crash.
- Each entry is `{"person_id", "name", "role"}` with role "on duty", "duty fallback" or "head of support":
  what the page's JSONB `chain` stores and the notices quote.
- The next step is the next entry after the current one whose person is still active; none left: the
  page is exhausted.
"""

from __future__ import annotations

from collections.abc import Collection

from release_requests import access
from release_requests.people.models import Person

ON_DUTY, FALLBACK, HEAD = "on duty", "duty fallback", "head of support"


def entry(person: Person, role: str) -> dict:
    return {"person_id": person.id, "name": person.name, "role": role}


def build_chain(*, routed: Person | None, basis: str, fallback: Person | None, head: Person | None) -> list[dict]:
    """The escalation chain of a page for a request routing gave to `routed` on `basis` (shift | fallback |
    nobody; `tam` has no chain). `head` must already have passed `head_of_support_problem`."""
    if basis == "tam":
        return []
    candidates = []
    if basis in ("shift", "fallback") and routed is not None:
        candidates.append((routed, ON_DUTY if basis == "shift" else FALLBACK))
    candidates += [(fallback, FALLBACK), (head, HEAD)]
    chain, seen = [], set()
    for person, role in candidates:
        if person is None or not person.active or person.id in seen:
            continue
        seen.add(person.id)
        chain.append(entry(person, role))
    return chain


def next_step(chain: list[dict], step: int, *, inactive: Collection[int] = ()) -> int | None:
    """The index of the next person to page after `step`, skipping people deactivated since the chain was
    fixed (`inactive`: their ids); None when nobody is left."""
    for index in range(step + 1, len(chain)):
        if chain[index]["person_id"] not in inactive:
            return index
    return None


def head_of_support_problem(ref: str, person: Person | None) -> str | None:
    """Why the configured head of support (`ref`, an e-mail or id; `person` what it names, or None) cannot end
    a chain; None when it can, or when none is configured."""
    if not ref:
        return None
    if person is None:
        return f"config/paging.toml head_of_support '{ref}' names nobody (an e-mail or id of a person)"
    if not person.active:
        return f"config/paging.toml head_of_support '{ref}' ({person.name}) is deactivated"
    if not access.allows(person, "page.be_paged"):
        allowed = ", ".join(sorted(access.rule("page.be_paged").roles))
        return (
            f"config/paging.toml head_of_support '{ref}' ({person.name}) has role '{person.role}'; "
            f"a page may wake only: {allowed}"
        )
    return None
