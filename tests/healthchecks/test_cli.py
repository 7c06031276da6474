"""`relreq healthcheck …` and `relreq customers set-certificate` through the real entry point and live API."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from pypdf import PdfReader

from release_requests import db
from release_requests.cli.output import CliError, attachment_name
from release_requests.healthchecks.schemas import BookIn
from release_requests.healthchecks.service import book
from release_requests.people.models import Person
from tests.conftest import last_line
from tests.healthchecks.test_api import ZONE, business_day, email_of, local_today

FIELDS = ("product", "area", "setting", "found", "severity", "recommendation")
CSV_HEADER = ",".join(FIELDS) + "\n"


def test_certificate_booking_findings_and_report_from_the_command_line(relreq, world, tmp_path, monkeypatch):
    customer = world.customer(timezone=ZONE)
    admin, engineer = world.user("admin"), world.user("triage")
    today = local_today()

    code, out, err = relreq("customers", "set-certificate", customer, "--start", str(today), "--end", str(today))
    assert code == 1 and "not after" in err
    code, out, err = relreq(
        "customers", "set-certificate", customer, "--start", str(today - timedelta(days=10)), "--json"
    )
    assert code == 0, err
    assert (json.loads(out)["certificate_start"], json.loads(out)["certificate_end"]) == (
        str(today - timedelta(days=10)),
        None,
    )
    code, out, _ = relreq("customers", "list")
    assert f"{today - timedelta(days=10)}..(open-ended)" in out
    code, out, err = relreq(
        "customers",
        "add",
        "--name",
        f"Certified {customer}",
        "--tier",
        "standard",
        "--timezone",
        ZONE,
        "--country",
        "RU",
        "--certificate-start",
        "2026-03-01",
        "--certificate-end",
        "2027-02-28",
        "--json",
    )
    assert code == 0, err
    assert (json.loads(out)["certificate_start"], json.loads(out)["certificate_end"]) == ("2026-03-01", "2027-02-28")

    day = business_day(today + timedelta(days=21))
    code, out, err = relreq(
        "healthcheck",
        "book",
        "--customer",
        customer,
        "--date",
        str(day),
        "--engineer",
        email_of(world, engineer),
        token=admin.token,
    )
    assert code == 0, err
    label = out.split()[0]
    assert label.startswith("HC-") and f"on {day} ({ZONE}), booked" in out

    code, out, err = relreq("healthcheck", "list", "--customer", customer, "--json", token=admin.token)
    assert [h["label"] for h in json.loads(out)] == [label]
    code, out, _ = relreq("healthcheck", "list", "--customer", customer, token=admin.token)
    assert label in out and "booked" in out
    code, out, err = relreq(
        "healthcheck",
        "book",
        "--customer",
        customer,
        "--date",
        str(day + timedelta(days=1)),
        "--engineer",
        email_of(world, engineer),
        token=admin.token,
    )
    assert code == 1 and f"already booked for {day} ({label})" in last_line(err)
    # a certificate change the booking would not survive is refused, naming it
    code, out, err = relreq("customers", "set-certificate", customer, "--start", str(day + timedelta(days=1)))
    assert code == 1 and f"{label} on {day} would be outside it" in last_line(err)

    # not a findings file; findings of a Health Check not yet confirmed
    other = tmp_path / "findings.txt"
    other.write_text("x")
    code, _, err = relreq("healthcheck", "findings", label, "--file", str(other), token=engineer.token)
    assert code == 1 and "give a .json or .csv file" in err
    good = tmp_path / "findings.json"
    row = dict(zip(FIELDS, ("Agent", "Policy", "Updates", "Old bases", "low", "Update"), strict=True))
    good.write_text(json.dumps([row]))
    code, _, err = relreq("healthcheck", "findings", label.lower(), "--file", str(good), token=engineer.token)
    assert "is booked; 'record findings' needs it to be confirmed, in_progress or findings_recorded" in err

    code, out, err = relreq(
        "healthcheck", "report", label, "--format", "pdf", "--out", str(tmp_path / "r.pdf"), token=admin.token
    )
    assert code == 0, err
    assert label in PdfReader(tmp_path / "r.pdf").pages[0].extract_text()
    code, out, _ = relreq("healthcheck", "report", label.removeprefix("HC-"), token=admin.token)
    assert out.startswith("<!DOCTYPE html>") and label in out
    monkeypatch.chdir(tmp_path)  # without --out, the PDF is written here under the name the API gives it
    code, out, err = relreq("healthcheck", "report", label.lower(), "--format", "pdf", token=admin.token)
    assert code == 0 and f"wrote {label}.pdf" in out, err
    assert label in PdfReader(tmp_path / f"{label}.pdf").pages[0].extract_text()

    code, out, err = relreq(
        "healthcheck",
        "reschedule",
        label,
        "--date",
        str(business_day(day + timedelta(days=2))),
        "--reason",
        "customer change freeze",
        token=admin.token,
    )
    assert code == 0 and "rescheduled" in out, err
    code, out, err = relreq("healthcheck", "confirm", label, token=admin.token)
    assert code == 0 and "confirmed" in out
    code, out, err = relreq("healthcheck", "show", label, "--json", token=admin.token)
    assert (json.loads(out)["status"], json.loads(out)["version"], json.loads(out)["findings"]) == ("confirmed", 3, [])
    code, out, err = relreq("healthcheck", "cancel", label, "--reason", "budget", token=admin.token)
    assert code == 0 and "cancelled" in out
    code, out, err = relreq("healthcheck", "show", label, token=admin.token)
    assert "cancelled" in out and ZONE in out


def test_a_csv_of_findings_then_the_report_is_delivered(relreq, world, config, tmp_path):
    """A Health Check booked 30 days ago (through the service with that day's clock), conducted now."""
    today = local_today()
    customer = world.customer(timezone=ZONE, certificate_start=today - timedelta(days=60))
    admin, engineer = world.user("admin"), world.user("build_engineer")
    then = datetime.now(UTC) - timedelta(days=30)
    with db.transaction(world.sessions) as s:
        data = BookIn(customer_id=customer, date=business_day(today - timedelta(days=15)), engineer=str(engineer.id))
        label = f"HC-{book(s, actor=s.get(Person, admin.id), data=data, now=then, config=config).id}"
    for command in ("confirm", "start"):
        code, out, err = relreq(
            "healthcheck", command, label, token=admin.token if command == "confirm" else engineer.token
        )
        assert code == 0, err
    bad = tmp_path / "bad.csv"
    bad.write_text(CSV_HEADER + "Agent,Policy,Updates,Old bases,low,Update\nAgent,Policy,Scan,x,severe,y\n")
    code, out, err = relreq("healthcheck", "findings", label, "--file", str(bad), token=engineer.token)
    assert code == 1 and "finding row 2: severity: Input should be 'critical'" in err
    code, out, err = relreq("healthcheck", "show", label, "--json", token=admin.token)
    assert (json.loads(out)["status"], json.loads(out)["findings"]) == ("in_progress", [])  # nothing stored
    findings = tmp_path / "findings.csv"
    findings.write_text(
        "\ufeff"
        + CSV_HEADER
        + 'Agent,Policy,Scan,"Scan excludes C:\\\n(the whole disk)",critical,"Remove, then rescan"\n'
        "Agent,Policy,Updates,Old bases,low,Update hourly\n",
        encoding="utf-8",
    )
    code, out, err = relreq("healthcheck", "findings", label, "--file", str(findings), token=engineer.token)
    assert code == 0 and f"{label} has 2 findings" in out, err
    code, out, err = relreq("healthcheck", "show", label, "--json", token=admin.token)
    shown = json.loads(out)
    assert shown["status"] == "findings_recorded"
    assert [(f["severity"], f["found"]) for f in shown["findings"]] == [
        ("critical", "Scan excludes C:\\\n(the whole disk)"),
        ("low", "Old bases"),
    ]
    code, out, err = relreq("healthcheck", "deliver", label, token=engineer.token)
    assert code == 0 and "report delivered" in out, err


@pytest.mark.parametrize(
    "disposition",
    [
        'attachment; filename="../../.bashrc"',
        'attachment; filename="/etc/cron.d/x"',
        'attachment; filename=".."',
        'attachment; filename=".profile"',
        'attachment; filename="a/b.pdf"',
        "attachment",
    ],
)
def test_a_download_is_written_only_under_a_plain_name_the_api_gives(disposition):
    assert attachment_name('attachment; filename="HC-12.pdf"') == "HC-12.pdf"
    with pytest.raises(CliError, match="without a plain file name; pass --out FILE"):
        attachment_name(disposition)
