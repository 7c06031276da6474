"""Client mistakes found by fuzzing the API answer 4xx in the documented shape, never 500."""

from __future__ import annotations

import pytest

from artifacts.bundle import BaseManifest
from tests.api.conftest import new_request


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        (
            "POST",
            "/api/v1/requests",
            {
                "json": {
                    "customer_id": "{customer}",
                    "kind": "false_positive",
                    "severity": 1,
                    "channel": "phone",
                    "title": "a\u0000b",
                }
            },
            422,
        ),
        ("GET", "/api/v1/requests/RR-2026-000001%00", {}, 422),
        ("GET", "/api/v1/requests", {"params": {"offset": 9223372036854775808}}, 422),
        ("GET", "/api/v1/requests", {"params": {"customer_id": "\u0000"}}, 422),
        ("PUT", "/api/v1/duty/fallback", {"json": {"person": "99999999999"}}, 404),
        ("PUT", "/api/v1/duty/fallback", {"json": {"person": "\u00b2"}}, 404),
        (
            "GET",
            "/api/v1/sla/due",
            {"params": {"customer_id": "{customer}", "severity": 1, "at": "9999-12-31T23:00:00Z"}},
            422,
        ),
        ("GET", "/api/v1/duty/shifts", {"params": {"from": "9999-12-31T00:00:00Z"}}, 422),
        ("POST", "/slack/interactions", {}, 503),
        (
            "POST",
            "/api/v1/requests/RR-2026-000001/samples",
            {"content": b"--x", "headers": {"content-type": "multipart/form-data; boundary=zzz"}},
            400,
        ),
    ],
)
def test_odd_input_is_a_clear_4xx(world, cast, method, path, kwargs, status):
    def fill(value):
        if isinstance(value, str):
            return value.replace("{customer}", cast.customer_id)
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        return value

    with world.client(cast.admin) as c:
        response = c.request(method, path, **fill(kwargs))
    assert response.status_code == status, response.text
    body = response.json()
    assert "error" in body and "message" in body


def test_customers_cannot_probe_people_or_record_leave(world, cast):
    with world.client(cast.customer_user) as c:
        existing = c.post(
            f"/api/v1/people/{cast.tam.id}/leave", json={"first_day": "2031-01-01", "last_day": "2031-01-02"}
        )
        missing = c.post("/api/v1/people/999999/leave", json={"first_day": "2031-01-01", "last_day": "2031-01-02"})
    assert existing.status_code == missing.status_code == 403


def test_customer_timeline_names_people_without_their_mailboxes_or_routing_internals(world, cast):
    created = new_request(world, cast.tam, cast.customer_id)
    with world.client(cast.customer_user) as c:
        events = c.get(f"/api/v1/requests/{created['id']}/timeline").json()
    with world.client(cast.triage) as c:
        staff_view = c.get(f"/api/v1/requests/{created['id']}/timeline").json()
    assert all("@" not in e["actor"] for e in events)
    assert next(e for e in events if e["action"] == "request.routed")["reason"] is None
    assert next(e for e in staff_view if e["action"] == "request.routed")["reason"]


@pytest.mark.parametrize("name", ["../escape", "/etc/passwd", "a/../../b", "a\\b", ""])
def test_manifest_file_names_cannot_leave_the_bundle(name):
    with pytest.raises(ValueError, match="plain relative path"):
        BaseManifest(
            version="2026.11.27.1",
            commit="a" * 40,
            files={name: {"sha256": "b" * 64, "size": 1}},
            builder="b",
            built_at="2026-11-27T00:00:00Z",
            signing_key_id="k" * 16,
            parent_version=None,
            rule_count=1,
            namespaces={},
            allowlist_entries=0,
            yara_x_version="1.23.0",
        )
