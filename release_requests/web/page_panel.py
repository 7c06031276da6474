"""The request page's Paging panel, for staff who may read pages: the page's state in words, who is paged now and
in which role, the chain in order, when the next person is paged, who took it and how — and whether the reader
may acknowledge it here. Customers never get one: pages are staff-only (`page.read`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from release_requests import access
from release_requests.errors import NotFound
from release_requests.paging import service as paging
from release_requests.people.models import Person

OPEN = ("paging", "exhausted")  # nobody has taken it yet: it may still be acknowledged


@dataclass(frozen=True)
class Step:
    number: int  # 1-based, as the notices count
    name: str
    role: str  # on duty | duty fallback | head of support
    # paged (before now, or the last one before the page ended) | now | waiting | not_paged (it ended first);
    # request_paging.html says each in words, as it does the page's status and how it was acknowledged
    state: str


@dataclass(frozen=True)
class PagePanel:
    status: str
    steps: list[Step]
    current: Step | None  # who is paged now (exhausted: the last one paged); None: nobody could be paged
    following: Step | None  # who is paged at `escalate_at` if nobody acknowledges; None: nobody is left
    paged_at: datetime
    escalate_at: datetime | None
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    acknowledged_via: str | None
    resolved_at: datetime | None
    can_acknowledge: bool


def panel(session: Session, *, reader: Person, request_id: str) -> PagePanel | None:
    """The panel of the request's page; None for a reader who may not read pages, or a request that has none."""
    if not access.allows(reader, "page.read"):
        return None
    try:
        page = paging.page_of(session, actor=reader, request_id=request_id)
    except NotFound:
        return None
    paging_now = page.status == "paging"
    steps = [
        Step(
            number=index + 1,
            name=entry["name"],
            role=entry["role"],
            state=(
                "paged"
                if index < page.step or (index == page.step and not paging_now)
                else "now"
                if index == page.step
                else "waiting"
                if paging_now
                else "not_paged"
            ),
        )
        for index, entry in enumerate(page.chain)
    ]
    following = paging.next_step(session, page=page) if paging_now else None
    by = session.get(Person, page.acknowledged_by_id) if page.acknowledged_by_id else None
    return PagePanel(
        status=page.status,
        steps=steps,
        current=steps[page.step] if steps else None,
        following=steps[following] if following is not None else None,
        paged_at=page.paged_at,
        escalate_at=page.escalate_at if paging_now else None,
        acknowledged_by=by.name if by else None,
        acknowledged_at=page.acknowledged_at,
        acknowledged_via=page.acknowledged_via,
        resolved_at=page.resolved_at,
        can_acknowledge=page.status in OPEN and access.allows(reader, "page.acknowledge"),
    )
