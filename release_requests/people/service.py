"""People and API tokens. Tokens are shown once and stored only as SHA-256 hashes."""

from __future__ import annotations

import hashlib
import re
import secrets

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from release_requests.access import ROLES, authorize, role_allows
from release_requests.access import is_staff as access_is_staff
from release_requests.audit.service import Actor, record
from release_requests.customers.schemas import DEFAULT_WEEKLY_HOURS, normalize_weekly_hours
from release_requests.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthenticated
from release_requests.people.models import ApiToken, Person
from release_requests.sla.calendar import check_country, check_timezone

TOKEN_PREFIX = "rr_"


class PersonCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=200)
    role: str
    email: EmailStr | None = None
    customer_id: str | None = None
    timezone: str = "UTC"
    working_hours: str = DEFAULT_WEEKLY_HOURS
    country: str | None = Field(default=None, description="for public holidays in availability checks")
    slack_user_id: str | None = Field(default=None, pattern=r"^[UW][A-Z0-9]{2,}$")

    @field_validator("role")
    @classmethod
    def _role(cls, value: str) -> str:
        if value not in ROLES:
            raise ValueError(f"unknown role '{value}' (one of: {', '.join(ROLES)})")
        return value

    _tz = field_validator("timezone")(classmethod(lambda cls, v: check_timezone(v)))
    _country = field_validator("country")(classmethod(lambda cls, v: check_country(v)))
    _hours = field_validator("working_hours")(classmethod(lambda cls, v: normalize_weekly_hours(v)))


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def actor_of(person: Person) -> Actor:
    return Actor(name=f"{person.name} <{person.email or person.id}> ({person.role})", id=person.id)


def create_person(session: Session, *, actor: Actor, data: PersonCreate) -> Person:
    member = role_allows(data.role, "customer.member")
    if member and not data.customer_id:
        raise InvalidInput("a customer user needs --customer", field="customer_id")
    if not member and data.customer_id:
        raise InvalidInput("only customer users belong to a customer", field="customer_id")
    if data.email and session.scalar(select(Person.id).where(Person.email == data.email)):
        raise Conflict(f"a person with e-mail {data.email} already exists", field="email")
    person = Person(**data.model_dump(mode="json"))
    session.add(person)
    session.flush()
    record(
        session,
        actor=actor,
        action="person.created",
        entity_type="person",
        entity_id=str(person.id),
        after=data.model_dump(mode="json"),
    )
    return person


def issue_token(session: Session, *, actor: Actor, person: Person) -> str:
    """A new bearer token for `person`; the caller shows it once, the DB keeps only its hash."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(person_id=person.id, token_hash=hash_token(token), prefix=token[:10]))
    record(
        session,
        actor=actor,
        action="token.issued",
        entity_type="person",
        entity_id=str(person.id),
        after={"prefix": token[:10]},
    )
    return token


# Built once, as the statements every request runs are: building one costs more than running it (0.3 ms of
# CPU against 0.2 ms, measured; see docs/throughput.md)
_BY_TOKEN = (
    select(Person)
    .join(ApiToken, ApiToken.person_id == Person.id)
    .where(ApiToken.token_hash == bindparam("token_hash"), ApiToken.revoked_at.is_(None))
)


def authenticate(session: Session, *, token: str) -> Person:
    person = session.scalar(_BY_TOKEN, {"token_hash": hash_token(token)})
    if person is None or not person.active:
        raise Unauthenticated("invalid or revoked API token")
    return person


def find_person(session: Session, *, ref: str) -> Person:
    """A person by numeric id or e-mail (what people type on the command line)."""
    if re.fullmatch(r"[0-9]{1,9}", ref):
        person = session.get(Person, int(ref))
    else:
        person = session.scalar(select(Person).where(Person.email == ref))
    if person is None:
        raise NotFound(f"no person '{ref}'")
    return person


def public_actor(actor: str) -> str:
    """'Tanya Smirnova <tanya@vendor.example> (tam)' → 'Tanya Smirnova (tam)': customers see names, not mailboxes."""
    return re.sub(r" ?<[^>]*>", "", actor)


def actor_as_seen(viewer: Person, actor: str | None) -> str | None:
    """An audit actor as `viewer` may read it: staff whole, everyone else without the mailbox."""
    return actor if actor is None or access_is_staff(viewer) else public_actor(actor)


def label(person: Person) -> str:
    """'Name (role)': how requests show their owner, assignee and submitter."""
    return f"{person.name} ({person.role})"


def display_name(session: Session, person_id: int | None) -> str | None:
    """The label of a person by id; None for nobody."""
    person = session.get(Person, person_id) if person_id is not None else None
    return label(person) if person else None


DISPLAY_LANGUAGES = ("en", "ru")


def set_language(session: Session, *, actor: Person, person: Person, language: str | None) -> None:
    """The language `person` reads the console in (en/ru; None: their company's, or English). Audited.

    A person sets their own (`profile.change`); nobody changes someone else's here."""
    authorize(actor, "profile.change")
    if language is not None and language not in DISPLAY_LANGUAGES:
        raise InvalidInput(f"unknown language '{language}' (one of: {', '.join(DISPLAY_LANGUAGES)})", field="language")
    if actor.id != person.id:
        raise Forbidden("a person changes only their own display language", field="person")
    if person.language == language:
        return
    before = person.language
    person.language = language
    session.flush()
    record(
        session,
        actor=actor_of(actor),
        action="person.language_changed",
        entity_type="person",
        entity_id=str(person.id),
        before={"language": before},
        after={"language": language},
    )
