"""The request state machine, defined once for the API, the CLI and the flows.

Terminal states have no outgoing edges. A `duplicate` follows the primary request's build and releases;
it leaves when its primary is closed (closed with it), or when a duty manager splits it off (back to
`accepted`, with a build of its own).
"""

from __future__ import annotations

from enum import StrEnum

from release_requests.errors import IllegalTransition


class Status(StrEnum):
    submitted = "submitted"
    needs_info = "needs_info"
    accepted = "accepted"
    rejected = "rejected"
    duplicate = "duplicate"
    building = "building"
    verifying = "verifying"
    awaiting_approval = "awaiting_approval"
    releasing = "releasing"
    released = "released"
    closed = "closed"
    cancelled = "cancelled"
    failed = "failed"


S = Status
TRANSITIONS: dict[Status, frozenset[Status]] = {
    S.submitted: frozenset({S.accepted, S.rejected, S.duplicate, S.needs_info, S.cancelled}),
    S.needs_info: frozenset({S.submitted, S.cancelled}),
    S.accepted: frozenset({S.building, S.cancelled, S.failed}),
    S.building: frozenset({S.verifying, S.failed, S.cancelled}),
    S.verifying: frozenset({S.awaiting_approval, S.failed, S.cancelled}),
    S.awaiting_approval: frozenset({S.releasing, S.building, S.failed, S.cancelled}),
    S.releasing: frozenset({S.awaiting_approval, S.released, S.failed}),
    S.released: frozenset({S.closed, S.failed}),
    S.failed: frozenset({S.building, S.closed}),
    S.rejected: frozenset(),
    S.duplicate: frozenset({S.accepted, S.closed}),  # split out by a duty manager; closed with the shared fix
    S.closed: frozenset(),
    S.cancelled: frozenset(),
}

# A duplicate waits on its primary's work, not on anybody's answer: not open work of its own.
OPEN_STATES = frozenset(s for s in Status if TRANSITIONS[s]) - {S.duplicate}


def check_transition(current: str, target: str) -> None:
    """Raise IllegalTransition (409) naming the allowed next states when `target` is not one of them."""
    allowed = TRANSITIONS[Status(current)]
    if Status(target) not in allowed:
        names = ", ".join(sorted(allowed)) or "none (terminal state)"
        raise IllegalTransition(
            f"cannot go from {current} to {target}; allowed next states: {names}",
            current=current,
            requested=target,
            allowed=sorted(allowed),
        )
