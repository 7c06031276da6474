"""Import every ORM module so that `Base.metadata` knows all tables (Alembic and relationship lookups)."""

from release_requests.audit.models import AuditEvent
from release_requests.customers.models import Customer, TamAssignment
from release_requests.healthchecks.models import HealthCheck, HealthCheckFinding
from release_requests.mail.models import InboundMail, MailboxCursor
from release_requests.notifications.models import CustomerNotificationPrefs, Notification, SlackDecision
from release_requests.paging.models import Page
from release_requests.people.models import ApiToken, LoginLink, Person, SignInFailure, WebSession
from release_requests.pipeline.models import Build, SegmentTrigger, SignoffEvent, StageRun
from release_requests.releases.models import ChannelHistory, ChannelPointer, KnownCleanFile, Release, TelemetryDetection
from release_requests.reports.models import DigestSubscription, ReportDelivery, ReportNote, ReportPreferences
from release_requests.requests.models import ReleaseRequest, Sample
from release_requests.routing.models import DutyFallback, DutyShift, Leave
from release_requests.sla.models import SlaCrossing

__all__ = [
    "ApiToken",
    "AuditEvent",
    "Build",
    "ChannelHistory",
    "ChannelPointer",
    "Customer",
    "CustomerNotificationPrefs",
    "DigestSubscription",
    "DutyFallback",
    "DutyShift",
    "HealthCheck",
    "HealthCheckFinding",
    "InboundMail",
    "KnownCleanFile",
    "Leave",
    "LoginLink",
    "MailboxCursor",
    "Notification",
    "Page",
    "Person",
    "Release",
    "ReleaseRequest",
    "ReportDelivery",
    "ReportNote",
    "ReportPreferences",
    "Sample",
    "SegmentTrigger",
    "SignInFailure",
    "SignoffEvent",
    "SlaCrossing",
    "SlackDecision",
    "StageRun",
    "TamAssignment",
    "TelemetryDetection",
    "WebSession",
]
