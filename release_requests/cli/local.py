"""Local commands: they act on the database directly (an admin on the server host)."""

from __future__ import annotations

import getpass
import socket
import time
from typing import Annotated

import typer

from release_requests.cli.output import CliError, console, print_json, progress_bar, table

db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
customers_app = typer.Typer(help="Customer records (local admin).", no_args_is_help=True)
users_app = typer.Typer(help="People and API tokens (local admin).", no_args_is_help=True)
audit_app = typer.Typer(help="The append-only audit log.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def _admin_actor():
    # deferred: the domain and database layers would add ~0.3 s to every `relreq` call, --help included
    from release_requests.audit.service import Actor

    return Actor(name=f"local-admin:{getpass.getuser()}@{socket.gethostname()}")


def _validated(model, **values):
    """Build a pydantic model from CLI values; the first problem becomes one line naming the option."""
    # deferred: pydantic loads with the domain, and most commands never validate locally
    from pydantic import ValidationError

    try:
        return model(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        option = "--" + str(first["loc"][0]).replace("_", "-") if first["loc"] else "input"
        raise CliError(f"{option}: {first['msg']}") from None


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Migrate the database schema to the latest revision (creates the embedded database if there is none)."""
    # deferred: the domain and database layers would add ~0.3 s to every `relreq` call, --help included
    from release_requests import db
    from release_requests.settings import get_settings

    settings = get_settings()
    url = db.resolve_database_url(settings, create=True)
    db.upgrade(url)
    where = "" if settings.database_url else f" (embedded, in {settings.data_dir.resolve()})"
    console.print(f"database at revision {db.current_revision(url)}{where}")


@customers_app.command("add")
def customers_add(
    name: Annotated[str, typer.Option(help="Customer's legal or display name.")],
    tier: Annotated[str, typer.Option(help="Support tier: enterprise | standard.")],
    timezone: Annotated[str, typer.Option(help="IANA time zone, e.g. Europe/Moscow.")],
    country: Annotated[str, typer.Option(help="ISO 3166 country code for public holidays, e.g. RU.")],
    subdivision: Annotated[str | None, typer.Option(help="Holiday subdivision (state/region), optional.")] = None,
    slack_channel: Annotated[str | None, typer.Option(help="Shared Slack channel (name or id).")] = None,
    email: Annotated[list[str] | None, typer.Option(help="E-mail contact; repeat for several.")] = None,
    language: Annotated[str, typer.Option(help="Language of notices: en | ru.")] = "en",
    business_hours: Annotated[
        str, typer.Option(help="Weekly hours, e.g. 'mon-fri 09:00-18:00; sat 10:00-14:00'.")
    ] = "mon-fri 09:00-18:00",
    licence: Annotated[
        list[str] | None,
        typer.Option(help="Licensed product, 'PRODUCT' or 'PRODUCT:SPEC' (SPEC like >=11,<12)."),
    ] = None,
    customer_id: Annotated[str | None, typer.Option("--id", help="Customer id (default: from the name).")] = None,
    certificate_start: Annotated[
        str | None, typer.Option(help="First day of the support certificate (YYYY-MM-DD), optional.")
    ] = None,
    certificate_end: Annotated[
        str | None, typer.Option(help="Last day of the support certificate (YYYY-MM-DD, inclusive), optional.")
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """Create a customer; prints its id (last line)."""
    # deferred: the domain and database layers would add ~0.3 s to every `relreq` call, --help included
    from release_requests.customers.schemas import CustomerCreate, CustomerOut
    from release_requests.customers.service import create_customer
    from release_requests.runtime import local_session

    grants = [dict(zip(("product", "versions"), (*g.split(":", 1), "")[:2], strict=True)) for g in licence or []]
    data = _validated(
        CustomerCreate,
        id=customer_id,
        name=name,
        tier=tier,
        timezone=timezone,
        country=country,
        subdivision=subdivision,
        slack_channel=slack_channel,
        email_contacts=email or [],
        language=language,
        business_hours=business_hours,
        licensed_products=grants,
        certificate_start=certificate_start,
        certificate_end=certificate_end,
    )
    with local_session() as session:
        customer = create_customer(session, actor=_admin_actor(), data=data)
        out = CustomerOut.model_validate(customer).model_dump(mode="json")
    if json_out:
        print_json(out)
    else:
        console.print(out["id"])


@customers_app.command("list")
def customers_list(json_out: JsonFlag = False) -> None:
    """List customers."""
    # deferred: the domain and database layers would add ~0.3 s to every `relreq` call, --help included
    from release_requests.customers.schemas import CustomerOut
    from release_requests.customers.service import list_customers
    from release_requests.runtime import local_session

    with local_session() as session:
        rows = [CustomerOut.model_validate(c).model_dump(mode="json") for c in list_customers(session)]
    if json_out:
        print_json(rows)
        return
    table(
        "Customers",
        ["id", "name", "tier", "time zone", "country", "language", "slack", "certificate"],
        [
            [
                r["id"],
                r["name"],
                r["tier"],
                r["timezone"],
                r["country"],
                r["language"],
                r["slack_channel"],
                r["certificate_start"] and f"{r['certificate_start']}..{r['certificate_end'] or '(open-ended)'}",
            ]
            for r in rows
        ],
    )


@customers_app.command("set-certificate")
def customers_set_certificate(
    customer_id: Annotated[str, typer.Argument(help="Customer id.")],
    start: Annotated[str, typer.Option(help="First day of the support certificate (YYYY-MM-DD).")],
    end: Annotated[
        str | None, typer.Option(help="Last day of the certificate (YYYY-MM-DD, inclusive; default: open-ended).")
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """Set or renew a customer's support certificate period: one Health Check per certificate year (the years of
    booked Health Checks follow; refused if two would share a year or one fall outside)."""
    # deferred: the domain and database layers would add ~0.3 s to every `relreq` call, --help included
    from release_requests.clock import db_now
    from release_requests.customers.schemas import CertificatePeriod, CustomerOut
    from release_requests.healthchecks.service import change_certificate
    from release_requests.runtime import local_session

    try:
        period = _validated(CertificatePeriod, certificate_start=start, certificate_end=end)
    except CliError as exc:  # the model's fields are --certificate-*; this command's options are --start/--end
        raise CliError(str(exc).replace("--certificate-", "--")) from None
    with local_session() as session:
        customer = change_certificate(
            session, actor=_admin_actor(), customer_id=customer_id, period=period, now=db_now(session)
        )
        out = CustomerOut.model_validate(customer).model_dump(mode="json")
    if json_out:
        print_json(out)
    else:
        console.print(f"{customer_id}: support certificate {start}..{out['certificate_end'] or '(open-ended)'}")


@customers_app.command("assign-tam")
def customers_assign_tam(
    customer_id: Annotated[str, typer.Argument(help="Customer id.")],
    tam: Annotated[str, typer.Option(help="The TAM's e-mail or person id.")],
) -> None:
    """Make a TAM responsible for a customer."""
    # deferred: the domain and database layers would add ~0.3 s to every `relreq` call, --help included
    from release_requests.customers.service import assign_tam
    from release_requests.people.service import find_person
    from release_requests.runtime import local_session

    with local_session() as session:
        assign_tam(session, actor=_admin_actor(), customer_id=customer_id, person=find_person(session, ref=tam))
    console.print(f"{tam} is now TAM of {customer_id}")


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="Full name.")],
    role: Annotated[
        str,
        typer.Option(help="admin, tam, duty_manager, triage, build_engineer, release_manager, customer, emergency."),
    ],
    customer: Annotated[
        list[str] | None,
        typer.Option(help="For role customer: their customer id. For role tam: a customer they serve (repeatable)."),
    ] = None,
    email: Annotated[str | None, typer.Option(help="E-mail address (unique).")] = None,
    timezone: Annotated[str, typer.Option(help="The person's IANA time zone (availability).")] = "UTC",
    working_hours: Annotated[str, typer.Option(help="Weekly hours, e.g. 'mon-fri 09:00-18:00'.")] = (
        "mon-fri 09:00-18:00"
    ),
    country: Annotated[str | None, typer.Option(help="Country whose public holidays the person has off.")] = None,
    slack_user: Annotated[str | None, typer.Option(help="Slack user id (U…) for Slack approvals.")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Create a person and print an API token, once, as the last line."""
    # deferred: the domain and database layers would add ~0.3 s to every `relreq` call, --help included
    from release_requests.customers.service import assign_tam
    from release_requests.people.service import PersonCreate, create_person, issue_token
    from release_requests.runtime import local_session

    customers = customer or []
    if role == "customer" and len(customers) != 1:
        raise CliError("--customer: a customer user belongs to exactly one customer")
    if customers and role not in ("customer", "tam"):
        raise CliError(f"--customer: only customer users and TAMs are tied to customers, not {role}")
    data = _validated(
        PersonCreate,
        name=name,
        role=role,
        email=email,
        timezone=timezone,
        slack_user_id=slack_user,
        working_hours=working_hours,
        country=country,
        customer_id=customers[0] if role == "customer" else None,
    )
    actor = _admin_actor()
    with local_session() as session:
        person = create_person(session, actor=actor, data=data)
        for customer_id in customers if role == "tam" else []:
            assign_tam(session, actor=actor, customer_id=customer_id, person=person)
        token = issue_token(session, actor=actor, person=person)
        person_id = person.id
    if json_out:
        print_json({"id": person_id, "name": name, "role": role, "token": token})
    else:
        console.print(f"created {name} ({role}), person id {person_id}; API token (shown once):")
        print(token)


@users_app.command("set-password")
def users_set_password(
    person: Annotated[str, typer.Argument(help="E-mail or person id.")],
) -> None:
    """Set a person's web console password, read from stdin (one line; at least 12 characters).

    Example: `printf '%s\\n' "$PASSWORD" | relreq users set-password soc@customer.example`"""
    # deferred: the domain and database layers would add ~0.3 s to every `relreq` call, --help included
    import sys

    from release_requests.people.service import find_person
    from release_requests.people.signin import NewPassword, set_password
    from release_requests.runtime import local_session

    password = getpass.getpass("New password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\r\n")
    # deferred with the domain (see above)
    from pydantic import ValidationError

    try:
        data = NewPassword(password=password)
    except ValidationError as exc:
        raise CliError(f"password (stdin): {exc.errors()[0]['msg'].removeprefix('Value error, ')}") from None
    with local_session() as session:
        found = find_person(session, ref=person)
        set_password(session, actor=_admin_actor(), person=found, password=data)
        email = found.email
    console.print(f"password set for {email}; they sign in at /login")


@users_app.command("login-link")
def users_login_link(
    person: Annotated[str, typer.Argument(help="E-mail or person id.")],
    json_out: JsonFlag = False,
) -> None:
    """Print a single-use web console sign-in URL, valid for 15 minutes (base: RR_PUBLIC_URL or RR_API_URL)."""
    # deferred: the domain and database layers would add ~0.3 s to every `relreq` call, --help included
    from release_requests.people.service import find_person
    from release_requests.people.signin import LINK_LIFETIME, issue_login_link
    from release_requests.runtime import local_session
    from release_requests.settings import get_settings

    settings = get_settings()
    with local_session() as session:
        found = find_person(session, ref=person)
        url = issue_login_link(
            session, actor=_admin_actor(), person=found, base_url=settings.public_url or settings.api_url
        )
    minutes = int(LINK_LIFETIME.total_seconds() // 60)
    if json_out:
        print_json({"person_id": found.id, "url": url, "valid_minutes": minutes})
    else:
        console.print(f"single-use sign-in link for {found.email or found.id}, valid {minutes} minutes:")
        print(url)


@users_app.command("invite")
def users_invite(
    person: Annotated[str, typer.Argument(help="E-mail or person id.")],
    json_out: JsonFlag = False,
) -> None:
    """E-mail a person a single-use web console sign-in link, valid for 15 minutes, through the outbox.

    The e-mail is in the person's language and leaves with the next delivery (`relreq serve`). When SMTP is not
    configured (RR_SMTP_URL) it will be skipped: the link is printed instead, to pass on."""
    # deferred: the domain and database layers would add ~0.3 s to every `relreq` call, --help included
    from release_requests.config import load_config
    from release_requests.notifications.service import queue_invitation
    from release_requests.notifications.transports import transport_status
    from release_requests.people.service import find_person
    from release_requests.people.signin import LINK_LIFETIME, issue_login_link
    from release_requests.runtime import local_session
    from release_requests.settings import get_settings

    settings = get_settings()
    config = load_config(settings.config_dir)
    email_status = transport_status(settings)["email"]
    actor = _admin_actor()
    with local_session() as session:
        found = find_person(session, ref=person)
        if not found.email:
            raise CliError(f"{person} has no e-mail address; `relreq users login-link {person}` prints a link instead")
        url = issue_login_link(session, actor=actor, person=found, base_url=settings.public_url or settings.api_url)
        row = queue_invitation(session, actor=actor, person=found, url=url, config=config)
        person_id, email, notification_id = found.id, found.email, row.id
    minutes = int(LINK_LIFETIME.total_seconds() // 60)
    sent = email_status == "configured"
    if json_out:
        out = {"person_id": person_id, "email": email, "notification_id": notification_id, "valid_minutes": minutes}
        print_json({**out, "email_status": email_status, **({} if sent else {"url": url})})
    elif sent:
        console.print(f"invitation for {email} queued (e-mail), notification {notification_id}")
    else:
        console.print(
            f"invitation for {email} queued, but the e-mail will be skipped (SMTP {email_status})", markup=False
        )
        console.print(f"pass on this single-use sign-in link yourself, valid {minutes} minutes:")
        print(url)


@audit_app.command("verify")
def audit_verify(json_out: JsonFlag = False) -> None:
    """Recompute the hash chain; exit non-zero naming the first altered row.

    An empty log (a new installation) is not an error: it exits 0 and says there was nothing to verify.
    A long log is checked by one process per core (over 300,000 events a second on 2 cores), with a
    progress bar on stderr.
    """
    # deferred: the domain and database layers would add ~0.3 s to every `relreq` call, --help included
    from release_requests.audit.service import verify_chain
    from release_requests.runtime import local_session

    started = time.monotonic()
    with local_session() as session, progress_bar(not json_out) as bar:
        report = verify_chain(
            session, progress=lambda done, total, label: bar(done, total, f"{label} {done:,}/{total:,} events")
        )
    seconds = time.monotonic() - started
    empty = report.ok and report.checked == 0
    if json_out:
        print_json(
            {
                "ok": report.ok,
                "empty": empty,
                "checked": report.checked,
                "first_broken_seq": report.first_broken_seq,
                "problem": report.problem,
            }
        )
        if not report.ok:
            raise typer.Exit(1)
        return
    if not report.ok:
        raise CliError(f"audit chain BROKEN after {report.checked} good rows: {report.problem}")
    if empty:
        console.print("audit log is empty: nothing to verify")
        return
    console.print(f"audit chain intact: {report.checked} events verified in {seconds:.1f} s")


def demo() -> None:
    """A scripted end-to-end story on a fresh embedded system, printed as it happens (a few minutes)."""
    # deferred: the domain and database layers would add ~0.3 s to every `relreq` call, --help included
    from release_requests.demo import run

    run()
