"""/updates over real HTTP: private channels answer only their customer, signed manifests, files with ranges."""

from __future__ import annotations

import base64
import hashlib

import pytest
from sqlalchemy import delete

from artifacts.signing import load_public_key, verify
from release_requests import db
from release_requests.releases.cohorts import in_cohort
from release_requests.releases.models import ChannelPointer
from tests.releases.fixtures import put


def publish_committed(world, channel: str, *versions: str, config) -> None:
    """Publish `versions` on a channel that starts empty (public channels are shared by the session's tests,
    and an older base may never replace a newer one)."""
    with db.transaction(world.sessions) as s:
        s.execute(delete(ChannelPointer).where(ChannelPointer.channel == channel))
        put(s, channel, *versions, config=config)


@pytest.fixture(scope="module")
def customer_channel(world, releases, config):
    customer = world.customer()
    channel = f"customer-{customer}"
    publish_committed(world, channel, releases.v1, config=config)
    return customer, channel


def test_customer_channel_answers_only_its_customer_and_staff(world, customer_channel):
    customer, channel = customer_channel
    other = world.customer()
    allowed = [world.user("customer", customer), world.user("admin"), world.user("tam", tam_for=[customer])]
    refused = [world.user("customer", other), world.user("tam", tam_for=[other]), None]
    for user in allowed:
        with world.client(user) as http:
            assert http.get(f"/updates/{channel}/manifest.json").status_code == 200, user.role
    for user in refused:
        with world.client(user) as http:
            response = http.get(f"/updates/{channel}/manifest.json")
            assert response.status_code == 404, user and user.role
            assert response.json()["message"] == f"no channel '{channel}'"
    with world.client() as http:
        bad = http.get(f"/updates/{channel}/manifest.json", headers={"Authorization": "Bearer rr_not-a-token"})
        assert bad.status_code == 404
        assert http.get("/updates/customer-no-such-customer/manifest.json").status_code == 404


def test_hotfix_channel_answers_only_its_customer(world, releases, config):
    channel = f"hotfix-{releases.hotfix_customer}-endpoint-agent"
    publish_committed(world, channel, releases.hotfix, config=config)
    owner, stranger = world.user("customer", releases.hotfix_customer), world.user("customer", world.customer())
    with world.client(owner) as http:
        body = http.get(f"/updates/{channel}/manifest.json").json()
        assert body["kind"] == "hotfix" and body["manifest"]["private_to"] == releases.hotfix_customer
        file = body["files"][0]
        download = http.get(file["url"])
        assert download.status_code == 200 and download.headers["cache-control"].startswith("private")
    for client in (world.client(stranger), world.client()):
        with client as http:
            assert http.get(f"/updates/{channel}/manifest.json").status_code == 404
            assert http.get(file["url"]).status_code == 404


def test_manifest_is_signed_and_files_carry_integrity_headers_and_ranges(world, releases, config, bundles):
    publish_committed(world, "global", releases.v1, releases.v2, config=config)
    with world.client() as http:
        key = load_public_key(http.get("/updates/public-key.pem").content, origin="server")
        body = http.get("/updates/global/manifest.json").json()
        assert body["version"] == releases.v2 and body["manifest"]["version"] == releases.v2
        verify(key, body["manifest_json"].encode(), body["signature"].encode(), origin="manifest")
        assert body["manifest_json"].encode() == (bundles.v2 / "manifest.json").read_bytes()
        rules = next(f for f in body["files"] if f["name"] == "rules.yarc")
        full = http.get(rules["url"])
        assert full.status_code == 200 and hashlib.sha256(full.content).hexdigest() == rules["sha256"]
        assert len(full.content) == rules["size"]
        assert full.headers["etag"] == f'"{rules["sha256"]}"'
        assert full.headers["x-content-sha256"] == rules["sha256"]
        assert full.headers["digest"] == "sha-256=" + base64.b64encode(bytes.fromhex(rules["sha256"])).decode()
        assert full.headers["accept-ranges"] == "bytes"
        part = http.get(rules["url"], headers={"Range": "bytes=100-1123"})
        assert part.status_code == 206
        assert part.headers["content-range"] == f"bytes 100-1123/{rules['size']}"
        assert part.content == full.content[100:1124]
        resumed = http.get(rules["url"], headers={"Range": f"bytes={rules['size'] - 10}-"})
        assert resumed.content == full.content[-10:]
        assert http.get(rules["url"], headers={"Range": f"bytes={rules['size'] + 5}-"}).status_code == 416

        # the fallback (previous) release's files stay downloadable; other files are not served here
        old = http.get("/updates/global/manifest.json").json()["files"]
        assert all(http.get(f["url"]).status_code == 200 for f in old)
        assert http.get(f"/updates/global/artifacts/{'0' * 64}").status_code == 404
        assert http.get("/updates/global/artifacts/not-a-hash").status_code == 422


def test_canary_serves_the_cohort_the_new_base_and_the_rest_the_previous(world, releases, config):
    publish_committed(world, "canary", releases.v1, releases.v2, config=config)
    clients = [f"ws-{i:04d}" for i in range(400)]
    inside = next(c for c in clients if in_cohort(channel="canary", client_id=c, percent=5))
    outside = next(c for c in clients if not in_cohort(channel="canary", client_id=c, percent=5))
    with world.client() as http:
        version = lambda **kw: http.get("/updates/canary/manifest.json", **kw).json()["version"]  # noqa: E731
        assert version(headers={"X-Client-Id": inside}) == releases.v2
        assert version(params={"client_id": inside}) == releases.v2
        assert version(headers={"X-Client-Id": outside}) == releases.v1
        assert version() == releases.v1
        assert [version(headers={"X-Client-Id": inside}) for _ in range(5)] == [releases.v2] * 5
        assert http.get("/updates/canary/manifest.json", params={"client_id": "x"}).status_code == 422
