"""How people sign in to the web console: passwords, single-use links, browser sessions, throttling.

Decisions written down:
- Passwords are hashed with argon2id (argon2-cffi's defaults: 3 passes over 64 MiB, `RR_PASSWORD_MEMORY_KIB`
  to fit the host, never below OWASP's 19 MiB; a stored hash is redone when the parameters change); a password is at
  least 12 characters and nothing else is imposed (NIST SP 800-63B: length, not composition rules).
- A sign-in link is valid 15 minutes and works once; issuing one does not end the person's sessions.
- The cookie carries a random session id; the database keeps its SHA-256 and the session's CSRF token. A
  session ends on sign-out, after `RR_WEB_SESSION_HOURS` in all, or after `RR_WEB_IDLE_MINUTES` unused.
- Guessing is slowed per e-mail (5 failures in 15 minutes) and per client address (20 in 15 minutes): the
  next attempt is refused until the oldest failure leaves the window, whether or not the password is right.
  A wrong e-mail and a wrong password read the same, and take the same time (a dummy hash is verified).
- Setting a password ends the person's open sessions (whoever had the old one is signed out).
- Nothing secret reaches the audit log: it records that a password was set or a link issued, not either.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.orm import Session

from release_requests.audit.service import Actor, record
from release_requests.clock import db_now
from release_requests.errors import InvalidInput, RateLimited, Unauthenticated
from release_requests.people.models import LoginLink, Person, SignInFailure, WebSession
from release_requests.people.service import actor_of
from release_requests.settings import get_settings

LINK_LIFETIME = timedelta(minutes=15)
FAILURE_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_EMAIL = 5
MAX_FAILURES_PER_CLIENT = 20
SEEN_RESOLUTION = timedelta(minutes=1)  # last_seen_at is written at most once a minute per session


@lru_cache
def _argon2(memory_kib: int) -> tuple[PasswordHasher, str]:
    """The hasher for this memory cost (RR_PASSWORD_MEMORY_KIB), and a hash nobody's password matches."""
    hasher = PasswordHasher(memory_cost=memory_kib)
    return hasher, hasher.hash("not a password anyone has")


def _hasher() -> PasswordHasher:
    return _argon2(get_settings().password_memory_kib)[0]


class NewPassword(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: SecretStr = Field(description="at least 12 characters")

    @field_validator("password")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        secret = value.get_secret_value()
        if len(secret) < 12:
            raise ValueError("a password needs at least 12 characters")
        if len(secret) > 1024:
            raise ValueError("a password may have at most 1024 characters")
        return value


class SignIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    email: str = Field(min_length=1, max_length=254)
    password: SecretStr = Field(min_length=1, max_length=1024)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def set_password(session: Session, *, actor: Actor, person: Person, password: NewPassword) -> None:
    if not person.email:
        raise InvalidInput(f"person {person.id} has no e-mail address to sign in with", field="person")
    person.password_hash = _hasher().hash(password.password.get_secret_value())
    ended = end_sessions_of(session, person=person)
    record(
        session,
        actor=actor,
        action="person.password_set",
        entity_type="person",
        entity_id=str(person.id),
        after={"sessions_ended": ended},
    )


def issue_login_link(session: Session, *, actor: Actor, person: Person, base_url: str) -> str:
    """A URL that signs `person` in once within 15 minutes; the database keeps only its hash."""
    if not person.active:
        raise InvalidInput(f"person {person.id} is deactivated", field="person")
    token = secrets.token_urlsafe(32)
    now = db_now(session)
    session.add(LoginLink(person_id=person.id, token_hash=_digest(token), expires_at=now + LINK_LIFETIME))
    record(
        session,
        actor=actor,
        action="person.login_link_issued",
        entity_type="person",
        entity_id=str(person.id),
        after={"expires_at": (now + LINK_LIFETIME).isoformat()},
    )
    return f"{base_url.rstrip('/')}/login/link/{token}"


def _retry_after(session: Session, column, value: str, limit: int, now: datetime) -> int | None:
    """Seconds until `value` may try again, or None when it has fewer than `limit` recent failures."""
    recent = list(
        session.scalars(
            select(SignInFailure.at)
            .where(column == value, SignInFailure.at > now - FAILURE_WINDOW)
            .order_by(SignInFailure.at.desc())
            .limit(limit)
        )
    )
    if len(recent) < limit:
        return None
    return max(1, int((recent[-1] + FAILURE_WINDOW - now).total_seconds()) + 1)


def check_password(session: Session, *, credentials: SignIn, client: str) -> Person | None:
    """The person these credentials sign in, or None (the failure is recorded: commit it).

    Raises RateLimited while the e-mail or the client address has too many recent failures."""
    now = db_now(session)
    email = credentials.email.lower()
    # one attempt per e-mail at a time: parallel guesses queue here, so each sees the failures before it
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"sign-in:{email}"})
    for column, value, limit in (
        (SignInFailure.email, email, MAX_FAILURES_PER_EMAIL),
        (SignInFailure.client, client, MAX_FAILURES_PER_CLIENT),
    ):
        wait = _retry_after(session, column, value, limit, now)
        if wait is not None:
            raise RateLimited(
                f"too many failed sign-ins; try again in {max(1, round(wait / 60))} min", retry_after=wait
            )
    person = session.scalar(select(Person).where(func.lower(Person.email) == email))
    if _verified(person, credentials.password.get_secret_value()):
        return person
    session.add(SignInFailure(email=email[:254], client=client[:64], at=now))
    session.execute(delete(SignInFailure).where(SignInFailure.at < now - 4 * FAILURE_WINDOW))  # keep it small
    return None


def _verified(person: Person | None, password: str) -> bool:
    stored = person.password_hash if person is not None and person.active else None
    try:
        hasher, dummy = _argon2(get_settings().password_memory_kib)
        hasher.verify(stored or dummy, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    if stored is None:
        return False
    if hasher.check_needs_rehash(stored):
        person.password_hash = hasher.hash(password)
    return True


def redeem_login_link(session: Session, *, token: str) -> Person:
    now = db_now(session)
    link = session.scalar(select(LoginLink).where(LoginLink.token_hash == _digest(token)).with_for_update())
    person = session.get(Person, link.person_id) if link else None
    if link is None or link.used_at is not None or link.expires_at <= now or person is None or not person.active:
        raise Unauthenticated("this sign-in link has expired or was already used; ask for a new one")
    link.used_at = now
    return person


def open_session(session: Session, *, person: Person, lifetime: timedelta, via: str) -> tuple[str, WebSession]:
    """A new browser session for `person`: the cookie value (shown once) and its row."""
    token = secrets.token_urlsafe(32)
    now = db_now(session)
    row = WebSession(
        person_id=person.id,
        token_hash=_digest(token),
        csrf_token=secrets.token_urlsafe(32),
        created_at=now,
        last_seen_at=now,
        expires_at=now + lifetime,
    )
    session.add(row)
    record(
        session,
        actor=actor_of(person),
        action="person.signed_in",
        entity_type="person",
        entity_id=str(person.id),
        after={"via": via},
    )
    return token, row


def resolve_session(session: Session, *, token: str, idle: timedelta) -> tuple[Person, WebSession]:
    """The person and session behind a cookie, or Unauthenticated when it ended, expired or sat idle."""
    now = db_now(session)
    row = session.scalar(select(WebSession).where(WebSession.token_hash == _digest(token)))
    person = session.get(Person, row.person_id) if row else None
    if (
        row is None
        or row.ended_at is not None
        or row.expires_at <= now
        or row.last_seen_at + idle <= now
        or person is None
        or not person.active
    ):
        raise Unauthenticated("your session has ended; sign in again")
    if now - row.last_seen_at >= SEEN_RESOLUTION:
        row.last_seen_at = now
    return person, row


def end_sessions_of(session: Session, *, person: Person) -> int:
    """End every open session of `person` (a new password signs out the browsers the old one signed in)."""
    result = session.execute(
        update(WebSession)
        .where(WebSession.person_id == person.id, WebSession.ended_at.is_(None))
        .values(ended_at=db_now(session))
    )
    return result.rowcount


def end_session(session: Session, *, token: str) -> None:
    row = session.scalar(select(WebSession).where(WebSession.token_hash == _digest(token)))
    if row is not None and row.ended_at is None:
        row.ended_at = db_now(session)
