"""The staff work queue: open requests in the order the team must take them (breached first, then severity,
Enterprise before standard, then the due time), each with its owner and why, and the SLA countdown ticking in
the browser. The results (count and table) reload themselves every 30 seconds (htmx, GET /queue/rows) with
the same filters, without reloading the page."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import Depends, Query, Request
from sqlalchemy.orm import Session

from release_requests import access
from release_requests.access import needs
from release_requests.api.deps import AppContext, context
from release_requests.clock import db_now
from release_requests.errors import InvalidInput
from release_requests.paging import service as paging
from release_requests.requests import presentation
from release_requests.requests.presentation import QUEUE_STATES, Routing
from release_requests.requests.schemas import RequestOut
from release_requests.requests.states import Status
from release_requests.web.rendering import KINDS, local_time, render, zone_label
from release_requests.web.session import Viewer, viewer, web_router

router = web_router()

REFRESH_SECONDS = 30
SEVERITIES = (1, 2, 3, 4)
SCOPES = ("all", "mine", "customers")
STATUS_CHOICES = tuple(s.value for s in Status if s in QUEUE_STATES)  # in the order of the lifecycle
Param = Annotated[str, Query(max_length=40)]


@dataclass(frozen=True)
class QueueFilters:
    """What the reader narrowed the queue to; empty means everything."""

    scope: str = "all"  # all | mine (owner or assignee) | customers (those I am TAM of)
    severity: int | None = None
    status: str | None = None
    kind: str | None = None

    @classmethod
    def parse(cls, *, scope: str, severity: str, status: str, kind: str) -> QueueFilters:
        """From the GET form; an empty value is 'any', an unknown one is refused (never silently dropped)."""
        if scope not in ("", *SCOPES):
            raise InvalidInput(f"unknown scope '{scope}' (one of: {', '.join(SCOPES)})", field="scope")
        if severity not in ("", *(str(s) for s in SEVERITIES)):
            raise InvalidInput(f"unknown severity '{severity}' (1 to 4)", field="severity")
        if status not in ("", *STATUS_CHOICES):
            raise InvalidInput(f"'{status}' is not a status of open work", field="status")
        if kind not in ("", *KINDS):
            raise InvalidInput(f"unknown kind '{kind}' (one of: {', '.join(KINDS)})", field="kind")
        return cls(
            scope=scope or "all", severity=int(severity) if severity else None, status=status or None, kind=kind or None
        )

    @property
    def active(self) -> bool:
        return self != QueueFilters()

    def query(self) -> str:
        """'?scope=mine&severity=1' (or ''): the same filters for the refreshed rows."""
        pairs = [
            (name, str(value))
            for name, value in (
                ("scope", None if self.scope == "all" else self.scope),
                ("severity", self.severity),
                ("status", self.status),
                ("kind", self.kind),
            )
            if value is not None
        ]
        return f"?{urlencode(pairs)}" if pairs else ""


@dataclass(frozen=True)
class QueueRow:
    item: RequestOut
    routing: Routing | None  # None only if the request left the reader's sight between two queries
    reason: str | None  # the routing reason, its times in the reader's zone
    page: paging.Unacknowledged | None = None  # its page, while nobody has acknowledged it


_ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})")


def in_zone(text: str | None, zone: ZoneInfo) -> str | None:
    """The routing reason with its ISO times ('shift until 2026-11-30T06:00:00+00:00') in the reader's zone,
    the zone named ('shift until 30 Nov 2026 09:00 MSK')."""
    if not text:
        return None

    def local(match: re.Match) -> str:
        try:
            return local_time(datetime.fromisoformat(match.group(0)), zone)
        except (ValueError, OverflowError):  # not a time after all: left as written
            return match.group(0)

    return _ISO_TIME.sub(local, text)


@dataclass(frozen=True)
class Queue:
    rows: list[QueueRow]
    open_count: int  # before the filters
    my_customers: frozenset[str]  # those the reader is TAM of (none: the filter is not offered)
    read_at: datetime


def _queue(session: Session, *, me: Viewer, ctx: AppContext, chosen: QueueFilters) -> Queue:
    items = presentation.queue(session, actor=me.person, config=ctx.config)
    routing = presentation.routing_of(session, actor=me.person, request_ids=[i.id for i in items])
    my_customers = presentation.tam_customer_ids(session, person=me.person)
    pages = (
        paging.unacknowledged(session, actor=me.person, request_ids=[i.id for i in items])
        if access.allows(me.person, "page.read")
        else {}
    )

    def wanted(item: RequestOut) -> bool:
        held = routing.get(item.id)
        if chosen.scope == "mine" and (held is None or me.person.id not in (held.owner_id, held.assignee_id)):
            return False
        if chosen.scope == "customers" and item.customer_id not in my_customers:
            return False
        return (
            (chosen.severity is None or item.severity == chosen.severity)
            and (chosen.status is None or item.status == chosen.status)
            and (chosen.kind is None or item.kind == chosen.kind)
        )

    rows = []
    for item in filter(wanted, items):
        held = routing.get(item.id)
        rows.append(QueueRow(item, held, in_zone(held.reason if held else None, me.zone), pages.get(item.id)))
    return Queue(rows=rows, open_count=len(items), my_customers=my_customers, read_at=db_now(session))


def _context(me: Viewer, ctx: AppContext, chosen: QueueFilters, found: Queue) -> dict:
    """What the page and its refreshed results both need."""
    return {
        "filters": chosen,
        "rows": found.rows,
        "open_count": found.open_count,
        "my_customers": found.my_customers,
        "updated_at": found.read_at,
        "severity_labels": {s: ctx.config.severity.label(s, me.language) for s in SEVERITIES},
        "refresh_url": f"/queue/rows{chosen.query()}",
        "refresh_seconds": REFRESH_SECONDS,
    }


@router.get("/queue", openapi_extra=needs("queue.read"))
def queue_page(
    request: Request,
    me: Viewer = Depends(viewer),
    ctx: AppContext = Depends(context),
    scope: Param = "",
    severity: Param = "",
    status: Param = "",
    kind: Param = "",
):
    chosen = QueueFilters.parse(scope=scope, severity=severity, status=status, kind=kind)
    with ctx.unit_of_work() as session:
        found = _queue(session, me=me, ctx=ctx, chosen=chosen)
    return render(
        request,
        "queue.html",
        viewer=me,
        zone_name=f"{me.zone.key} ({zone_label(datetime.now(me.zone))})",
        statuses=STATUS_CHOICES,
        kinds=tuple(KINDS),
        **_context(me, ctx, chosen, found),
    )


@router.get("/queue/rows", openapi_extra=needs("queue.read"))
def queue_rows(
    request: Request,
    me: Viewer = Depends(viewer),
    ctx: AppContext = Depends(context),
    scope: Param = "",
    severity: Param = "",
    status: Param = "",
    kind: Param = "",
):
    """The table body alone, for the periodic refresh (htmx swaps it in place)."""
    chosen = QueueFilters.parse(scope=scope, severity=severity, status=status, kind=kind)
    with ctx.unit_of_work() as session:
        found = _queue(session, me=me, ctx=ctx, chosen=chosen)
    return render(request, "queue_results.html", viewer=me, **_context(me, ctx, chosen, found))
