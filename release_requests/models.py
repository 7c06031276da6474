"""Import every ORM module so that `Base.metadata` knows all tables (Alembic and relationship lookups)."""

from release_requests.audit.models import AuditEvent
from release_requests.customers.models import Customer, TamAssignment
from release_requests.people.models import ApiToken, Person
from release_requests.requests.models import ReleaseRequest, Sample

__all__ = ["ApiToken", "AuditEvent", "Customer", "Person", "ReleaseRequest", "Sample", "TamAssignment"]
