"""Samples are evidence handled like malware: content-addressed, never executable, hash-checked."""

from __future__ import annotations

import hashlib
import stat

from release_requests.samples.store import sample_path
from tests.api.conftest import new_request

# The EICAR test string, assembled at run time so that no scanner flags this file.
EICAR = ("X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + "EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*").encode()


def upload(client, request_id, content: bytes, sha256: str | None = None, name="sample.exe"):
    data = {"sha256": sha256} if sha256 else {}
    return client.post(f"/api/v1/requests/{request_id}/samples", files={"file": (name, content)}, data=data)


def test_upload_is_stored_content_addressed_read_only_and_fetchable_by_staff_and_owner(world, cast, settings):
    created = new_request(world, cast.customer_user, None)
    digest = hashlib.sha256(EICAR).hexdigest()
    with world.client(cast.customer_user) as c:
        response = upload(c, created["id"], EICAR, digest)
    assert response.status_code == 201, response.text
    assert response.json()["sha256"] == digest and response.json()["size"] == len(EICAR)
    path = sample_path(settings.samples_dir, digest)
    mode = path.stat().st_mode
    assert path.read_bytes() == EICAR
    assert not mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH) and not mode & stat.S_IWUSR

    for user in (cast.customer_user, cast.triage, cast.tam):
        with world.client(user) as c:
            fetched = c.get(f"/api/v1/requests/{created['id']}/samples/{digest}")
        assert fetched.status_code == 200 and fetched.content == EICAR
        assert fetched.headers["content-type"] == "application/octet-stream"
        assert fetched.headers["x-content-type-options"] == "nosniff"
        assert ".exe" not in fetched.headers["content-disposition"]
    with world.client(cast.other_customer_user) as c:
        assert c.get(f"/api/v1/requests/{created['id']}/samples/{digest}").status_code == 404


def test_hash_mismatch_is_refused_and_nothing_is_kept(world, cast, settings):
    created = new_request(world, cast.tam, cast.customer_id)
    wrong = "0" * 64
    with world.client(cast.tam) as c:
        response = upload(c, created["id"], b"some bytes", wrong)
        shown = c.get(f"/api/v1/requests/{created['id']}").json()
    assert response.status_code == 422 and response.json()["field"] == "sha256"
    assert shown["samples"] == []
    assert not sample_path(settings.samples_dir, hashlib.sha256(b"some bytes").hexdigest()).exists()
    assert list((settings.samples_dir / "tmp").iterdir()) == []


def test_oversized_upload_is_413(world, cast, config):
    created = new_request(world, cast.tam, cast.customer_id)
    too_big = b"A" * (config.intake.samples.max_bytes + 1)
    with world.client(cast.tam) as c:
        response = upload(c, created["id"], too_big)
        assert c.get(f"/api/v1/requests/{created['id']}").json()["samples"] == []
    assert response.status_code == 413 and response.json()["limit"] == config.intake.samples.max_bytes


def test_hash_only_evidence_at_intake_and_later(world, cast):
    digest = hashlib.sha256(b"customer could not send the file").hexdigest()
    created = new_request(world, cast.tam, cast.customer_id, sample_sha256=[digest.upper()])
    assert created["samples"][0]["sha256"] == digest and created["samples"][0]["stored"] is False
    other = "ab" * 32
    with world.client(cast.tam) as c:
        added = c.post(f"/api/v1/requests/{created['id']}/samples", data={"sha256": other})
        nothing = c.post(f"/api/v1/requests/{created['id']}/samples", data={})
        bytes_of_hash_only = c.get(f"/api/v1/requests/{created['id']}/samples/{other}")
        bad = c.post(f"/api/v1/requests/{created['id']}/samples", data={"sha256": "xyz"})
    assert added.status_code == 201 and added.json()["stored"] is False
    assert nothing.status_code == 422 and nothing.json()["field"] == "file"
    assert bytes_of_hash_only.status_code == 404
    assert bad.status_code == 422 and bad.json()["fields"][0]["field"] == "sha256"


def test_same_sample_twice_is_recorded_once(world, cast):
    created = new_request(world, cast.tam, cast.customer_id)
    with world.client(cast.tam) as c:
        upload(c, created["id"], b"payload")
        upload(c, created["id"], b"payload")
        samples = c.get(f"/api/v1/requests/{created['id']}").json()["samples"]
        actions = [e["action"] for e in c.get(f"/api/v1/requests/{created['id']}/timeline").json()]
    assert len(samples) == 1
    assert actions.count("sample.added") == 1


def test_other_customer_cannot_attach_samples(world, cast):
    created = new_request(world, cast.tam, cast.customer_id)
    with world.client(cast.other_customer_user) as c:
        assert upload(c, created["id"], b"x").status_code == 404


def multipart(name: bytes, content: bytes) -> tuple[bytes, dict]:
    """A multipart body with the file name's raw bytes: httpx would percent-escape control characters."""
    boundary = b"rr-test-boundary"
    body = (
        b"--" + boundary + b"\r\n"
        b'Content-Disposition: form-data; name="file"; filename="' + name + b'"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n" + content + b"\r\n--" + boundary + b"--\r\n"
    )
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary.decode()}"}


def test_file_names_cannot_spoof_their_extension_or_break_a_display(world, cast):
    """`invoice<RLO>gpj.exe` reads `invoiceexe.jpg` on screen: bidi controls and control characters are
    stored and shown as visible [U+XXXX] escapes, in the sample list, the request and the timeline."""
    created = new_request(world, cast.tam, cast.customer_id)
    with world.client(cast.tam) as c:
        spoofed = upload(c, created["id"], b"MZ spoofed", name="invoice\u202egpj.exe")
        isolate = upload(c, created["id"], b"MZ isolate", name="\u2067\u200fpay\u2069roll\u061c\u200e\u202a.exe")
        body, headers = multipart("bell\x07\x1b[31mred\x7f\u0085.exe".encode(), b"MZ control")
        control = c.post(f"/api/v1/requests/{created['id']}/samples", content=body, headers=headers)
        shown = c.get(f"/api/v1/requests/{created['id']}").json()["samples"]
        listed = c.get(f"/api/v1/requests/{created['id']}/samples").json()
        timeline = c.get(f"/api/v1/requests/{created['id']}/timeline").json()
    expected = {
        "invoice[U+202E]gpj.exe",
        "[U+2067][U+200F]pay[U+2069]roll[U+061C][U+200E][U+202A].exe",
        "bell[U+0007][U+001B][31mred[U+007F][U+0085].exe",
    }
    assert {spoofed.json()["filename"], isolate.json()["filename"], control.json()["filename"]} == expected
    assert {s["filename"] for s in shown} == {s["filename"] for s in listed} == expected
    assert {e["after"]["filename"] for e in timeline if e["action"] == "sample.added"} == expected


def test_names_stored_before_the_cleaning_are_shown_escaped(world, cast):
    from sqlalchemy import update

    from release_requests import db
    from release_requests.requests.models import Sample

    created = new_request(world, cast.tam, cast.customer_id)
    with world.client(cast.tam) as c:
        digest = upload(c, created["id"], b"MZ old upload", name="old.exe").json()["sha256"]
    with db.transaction(world.sessions) as s:  # as an older version stored it
        s.execute(update(Sample).where(Sample.sha256 == digest).values(filename="report\u202efdp.scr"))
    with world.client(cast.tam) as c:
        [sample] = c.get(f"/api/v1/requests/{created['id']}").json()["samples"]
    assert sample["filename"] == "report[U+202E]fdp.scr"
