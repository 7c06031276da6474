"""Notification outbox and customer notification preferences: thin handlers over the notification services."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from release_requests.access import needs
from release_requests.api.deps import AppContext, caller, context
from release_requests.notifications import preferences, service
from release_requests.notifications.schemas import NotificationFilters, NotificationOut, PreferencesIn, PreferencesOut
from release_requests.people.models import Person

router = APIRouter(prefix="/api/v1", tags=["notifications"])


@router.get("/notifications", response_model=list[NotificationOut], openapi_extra=needs("notification.read"))
def list_notifications(
    filters: Annotated[NotificationFilters, Query()], me: Person = Depends(caller), ctx: AppContext = Depends(context)
):
    with ctx.unit_of_work() as session:
        rows = service.list_notifications(session, actor=me, filters=filters)
        return [NotificationOut.model_validate(n) for n in rows]


@router.post(
    "/notifications/{notification_id}/retry", response_model=NotificationOut, openapi_extra=needs("notification.retry")
)
def retry(notification_id: str, me: Person = Depends(caller), ctx: AppContext = Depends(context)):
    with ctx.unit_of_work() as session:
        return NotificationOut.model_validate(service.retry(session, actor=me, notification_id=notification_id))


@router.get(
    "/customers/{customer_id}/notification-preferences",
    response_model=PreferencesOut,
    openapi_extra=needs("preferences.read"),
)
def get_preferences(customer_id: str, me: Person = Depends(caller), ctx: AppContext = Depends(context)):
    with ctx.unit_of_work() as session:
        return preferences.get_preferences(session, actor=me, customer_id=customer_id)


@router.put(
    "/customers/{customer_id}/notification-preferences",
    response_model=PreferencesOut,
    openapi_extra=needs("preferences.change"),
)
def put_preferences(
    customer_id: str, body: PreferencesIn, me: Person = Depends(caller), ctx: AppContext = Depends(context)
):
    with ctx.unit_of_work() as session:
        return preferences.set_preferences(session, actor=me, customer_id=customer_id, data=body)
