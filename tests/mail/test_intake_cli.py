"""`relreq intake` and /api/v1/intake over the real entry point, the real API and the shared test database:
a mail system's pipe, the API's raw upload, and the duty manager reading and assigning the mailbox."""

from __future__ import annotations

import io
import json
import sys
import uuid

from tests.conftest import last_line
from tests.mail.conftest import SAMPLE, message


def test_a_pipe_files_a_message_from_a_file_or_stdin_and_a_duplicate_exits_0(world, relreq, tmp_path, monkeypatch):
    customer = world.customer()
    contact = f"soc-{customer.removeprefix('cust-')}@example.com"
    raw = message(sender=contact, subject="[S3] Payroll flagged", attachments=(("payroll.exe", SAMPLE),))
    eml = tmp_path / "report.eml"
    eml.write_bytes(raw)
    code, out, err = relreq("intake", "email", str(eml), "--json")
    assert code == 0, err
    filed = json.loads(out)
    assert filed["outcome"] == "filed" and filed["request_id"].startswith("RR-") and not filed["duplicate"]
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(raw)))
    code, out, err = relreq("intake", "email", "-")
    assert code == 0, err
    assert (
        out.splitlines()[0]
        == f"mail {filed['mail_id']}: filed {filed['request_id']} (a duplicate: read before, nothing done again)"
    )
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(message(sender="someone@unknown.example"))))
    code, out, err = relreq("intake", "email")
    assert code == 0 and out.startswith("mail ") and ": held" in out.splitlines()[0]
    code, _, err = relreq("intake", "email", str(tmp_path / "missing.eml"))
    assert code == 1 and "missing.eml is not a readable file" in err


def test_nothing_recorded_is_exit_75_so_the_mail_system_retries(relreq, tmp_path, monkeypatch):
    eml = tmp_path / "m.eml"
    eml.write_bytes(message(sender="a@b.example"))
    monkeypatch.setenv("RR_CONFIG_DIR", str(tmp_path / "no-config-here"))
    code, _, err = relreq("intake", "email", str(eml))
    assert code == 75 and err.startswith("error: not recorded (")


def test_the_api_takes_a_raw_message_and_the_duty_manager_reads_and_assigns_it(world, relreq):
    customer = world.customer()
    manager = world.user("duty_manager")
    raw = message(
        sender=f"Stranger <{uuid.uuid4().hex[:8]}@private.example>",
        subject="[S2] urgent",
        text=None,
        html="<p>Help <b>now</b></p>",
    )
    with world.client(manager) as client:
        wrong = client.post("/api/v1/intake/email", content=raw, headers={"Content-Type": "text/plain"})
        assert wrong.status_code == 422 and "message/rfc822" in wrong.json()["message"]
        response = client.post("/api/v1/intake/email", content=raw, headers={"Content-Type": "message/rfc822"})
        assert response.status_code == 200, response.text
        held = response.json()
        assert held["outcome"] == "held" and held["reason"].startswith("unknown sender")
        raw_response = client.get(f"/api/v1/intake/mail/{held['mail_id']}/raw")
        assert raw_response.content == raw
        assert raw_response.headers["content-type"] == "message/rfc822"
        assert raw_response.headers["content-disposition"] == f'attachment; filename="mail-{held["mail_id"]}.eml"'
        assert raw_response.headers["x-content-type-options"] == "nosniff"
        detail = client.get(f"/api/v1/intake/mail/{held['mail_id']}").json()
        assert detail["text"] == "Help now" and "<p>" not in json.dumps(detail)
    with world.client(world.user("customer", customer)) as client:
        refused = client.post("/api/v1/intake/email", content=raw, headers={"Content-Type": "message/rfc822"})
        assert refused.status_code == 403
    code, out, err = relreq("intake", "list", "--outcome", "held", "--json", "--limit", "500", token=manager.token)
    assert code == 0, err
    assert held["mail_id"] in [m["id"] for m in json.loads(out)]
    code, out, err = relreq("intake", "show", str(held["mail_id"]), token=manager.token)
    assert code == 0 and "unknown sender" in out and "Help now" in out
    code, out, err = relreq("intake", "assign", str(held["mail_id"]), token=manager.token)
    assert code == 1 and "exactly one of --customer and --request" in err
    code, out, err = relreq("intake", "assign", str(held["mail_id"]), "--customer", customer, token=manager.token)
    assert code == 0, err
    request_id = last_line(out).split()[-1]
    with world.client(manager) as client:
        request = client.get(f"/api/v1/requests/{request_id}").json()
    assert (request["customer_id"], request["severity"], request["channel"], request["description"]) == (
        customer,
        2,
        "email",
        "Help now",
    )
    code, out, err = relreq("intake", "assign", str(held["mail_id"]), "--request", request_id, token=manager.token)
    assert code == 1 and "already assigned" in err
