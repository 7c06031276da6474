"""Nothing of one customer reaches another or the public: probed through the real API and the public update
endpoints, as an anonymous caller and as other customers, after real builds and releases."""

from __future__ import annotations

import hashlib
import json

import httpx
from sqlalchemy import select

from release_requests import db
from release_requests.notifications.models import Notification
from release_requests.pipeline.schemas import CloseIn
from release_requests.pipeline.service import close
from release_requests.requests.models import ReleaseRequest
from release_requests.requests.states import Status
from tests.conftest import Builder
from tests.pipeline.driving import api_for, new_request, release, run_pending, sample_bytes, token_for

SECRET_A = "ACME-SECRET-7731 payroll tool"
SECRET_C = "C-ONLY-TITLE-99 ledger"


def customer_user(w, customer_id: str) -> dict[str, str]:
    with db.transaction(w.seg.sessions) as s:
        person = Builder(s, w.config).person("customer", customer_id=customer_id)
    return {"Authorization": f"Bearer {token_for(w, person)}"}


def customer_of(w, request_id: str) -> str:
    from release_requests.requests.models import ReleaseRequest

    with db.transaction(w.seg.sessions) as s:
        return s.get(ReleaseRequest, request_id).customer_id


def test_no_customer_words_ids_paths_or_channels_reach_the_public_or_other_customers(world_pipeline, staff):
    w = world_pipeline
    content_a = sample_bytes(w, "payroll")
    a = new_request(w, staff, content_a, title=SECRET_A)
    run_pending(w, a)
    with db.transaction(w.seg.sessions) as s:  # another customer reports the same file: it joins A's build
        b_builder = Builder(s, w.config)
        customer_b = b_builder.customer()
        tam_b = b_builder.person("tam", tam_for=[customer_b.id])
        b = b_builder.request(
            by=tam_b, customer=customer_b, title="B's own words", sample_sha256=[hashlib.sha256(content_a).hexdigest()]
        ).id
    c = new_request(w, staff, sample_bytes(w, "ledger"), title=SECRET_C)
    run_pending(w, c)
    release(w, staff, a, ["internal", "canary", "customer"])
    release(w, staff, c, ["internal", "canary"])
    customer_a, customer_c = customer_of(w, a), customer_of(w, c)
    as_b, as_c = customer_user(w, customer_b.id), customer_user(w, customer_c)
    foreign_to_b = [a, c, SECRET_A, SECRET_C, f"customer-{customer_a}", f"customer-{customer_c}"]
    server_paths = [str(w.settings.data_dir), str(w.settings.signature_repo)]

    with api_for(w) as url, httpx.Client(base_url=url, timeout=30) as http:
        # the public: canary's base carries no customer's words, request ids or server paths; internal is staff-only
        assert http.get("/updates/internal/manifest.json").status_code == 404
        manifest = http.get("/updates/canary/manifest.json").json()
        blobs = [http.get(f["url"]).content for f in manifest["files"]] + [manifest["manifest_json"].encode()]
        for needle in (SECRET_A, SECRET_C, a, b, c, *server_paths):
            assert not any(needle.encode() in blob for blob in blobs), needle
        allowlist = next(
            blob for f, blob in zip(manifest["files"], blobs, strict=False) if f["name"] == "allowlist.tsv"
        )
        assert b"\tFX-" in allowlist and b"false positive of" in allowlist
        assert http.get("/updates/internal/manifest.json", headers=as_b).status_code == 404  # customers too
        as_staff = {"Authorization": f"Bearer {token_for(w, staff['build_engineer'])}"}
        assert http.get("/updates/internal/manifest.json", headers=as_staff).status_code == 200

        # another customer: their own request, the advisory, their own channel; never A's or C's ids or words
        mine = http.get(f"/api/v1/requests/{b}", headers=as_b).json()
        assert mine["status"] == "duplicate" and mine["duplicate_of"] is None and mine["advisory_id"].startswith("ADV-")
        views = [
            http.get(f"/api/v1/requests/{b}", headers=as_b).text,
            http.get(f"/api/v1/requests/{b}/timeline", headers=as_b).text,
            http.get(f"/api/v1/requests/{b}/pipeline", headers=as_b).text,
            http.get("/api/v1/channels", headers=as_b).text,
            http.get("/api/v1/channels/canary/history", headers=as_b).text,
            http.get("/api/v1/requests", headers=as_b).text,
        ]
        for view in views:
            for needle in foreign_to_b:
                assert needle not in view, (needle, view[:300])
        assert http.get(f"/api/v1/requests/{a}", headers=as_b).status_code == 404
        channels = {ch["channel"] for ch in http.get("/api/v1/channels", headers=as_b).json()}
        assert channels == {"canary", f"customer-{customer_b.id}"}, channels

        # C reads canary's history: A's release moved it, but A's id is not C's to see
        history = http.get("/api/v1/channels/canary/history", headers=as_c).text
        assert a not in history and c in history

    with db.transaction(w.seg.sessions) as s:  # every notice B's customer was sent: B's words and ids only
        contexts = s.scalars(
            select(Notification.context).where(Notification.request_id == b, Notification.audience == "customer")
        ).all()
    assert contexts
    text = json.dumps(contexts)
    for needle in foreign_to_b:
        assert needle not in text, needle
    assert f"customer-{customer_b.id}" in text  # the release notice names B's own channel

    # A's customer closes with words of their own: B's report closes with the shared fix, without them
    release(w, staff, a, ["global"])
    with db.transaction(w.seg.sessions) as s:
        closer = Builder(s, w.config).person("duty_manager")
        close(s, actor=closer, request_id=a, data=CloseIn(reason="ACME-SECRET close note"), config=w.config)
    with db.transaction(w.seg.sessions) as s:
        assert s.get(ReleaseRequest, b).status == Status.closed
        closed = s.scalars(
            select(Notification.context).where(Notification.request_id == b, Notification.event == "request.closed")
        ).all()
    assert closed and "ACME-SECRET" not in json.dumps(closed)
    with api_for(w) as url, httpx.Client(base_url=url, timeout=30) as http:
        timeline = http.get(f"/api/v1/requests/{b}/timeline", headers=as_b).text
    assert mine["advisory_id"] in timeline and a not in timeline  # the advisory is B's to see; A's id is not


def test_a_failed_build_names_files_by_name_and_hash_never_a_server_path(world_pipeline, staff):
    w = world_pipeline
    rid = new_request(w, staff, b"MZ a file no rule detects")
    assert any("failed" in r for r in run_pending(w, rid))
    with db.transaction(w.seg.sessions) as s:
        b = Builder(s, w.config)
        viewer = b.person("customer", customer_id=customer_of(w, rid))
    headers = {"Authorization": f"Bearer {token_for(w, viewer)}"}
    with api_for(w) as url, httpx.Client(base_url=url, timeout=30) as http:
        pipeline = http.get(f"/api/v1/requests/{rid}/pipeline", headers=headers).text
        timeline = http.get(f"/api/v1/requests/{rid}/timeline", headers=headers).text
    sha = hashlib.sha256(b"MZ a file no rule detects").hexdigest()
    assert f"{sha} (sha256" in pipeline and "no rule detects it" in pipeline
    for view in (pipeline, timeline):
        assert str(w.settings.data_dir) not in view and "/tmp/" not in view
