"""The update client end to end over real HTTP: installs what verifies, refuses the rest, installs nothing then.

Tampering happens where an attacker (or a broken network) would do it: a man-in-the-middle proxy between
the client and the real API rewrites the manifest, flips a byte of a file or cuts a download short.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from artifacts.signing import public_key_pem
from artifacts.store import LocalStore
from release_requests import db
from release_requests.releases import registry
from release_requests.releases.models import TelemetryDetection
from release_requests.update_client import CREDENTIAL, UpdateFailed, fetch
from tests.releases.fixtures import SYSTEM, put

# (path, body) -> (body, declared Content-Length)
Mutation = Callable[[str, bytes], tuple[bytes, int]]


@contextmanager
def mitm(upstream: str, mutate: Mutation) -> Iterator[str]:
    """A proxy in front of the API that passes requests on and lets `mutate` rewrite each response."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            headers = {k: v for k, v in self.headers.items() if k.lower() in ("authorization", "x-client-id", "range")}
            answer = httpx.get(upstream + self.path, headers=headers, timeout=30)
            body, length = mutate(self.path, answer.content)
            self.send_response(answer.status_code)
            self.send_header("Content-Type", answer.headers.get("content-type", "application/octet-stream"))
            self.send_header("Content-Length", str(length))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def snapshot(dest: Path) -> tuple:
    """Everything installed: the `current` link and every file under DEST (no leftovers allowed)."""
    files = sorted(str(p.relative_to(dest)) for p in dest.rglob("*"))
    link = os.readlink(dest / "current") if (dest / "current").is_symlink() else None
    return link, files


@pytest.fixture
def setup(world, releases, config, tmp_path):
    customer = world.customer()
    channel = f"customer-{customer}"
    with db.transaction(world.sessions) as s:
        put(s, channel, releases.v1, config=config)
    user = world.user("customer", customer)
    return channel, user, tmp_path / "av-base"


def test_install_then_update_then_nothing_to_do(setup, relreq, releases, world, config, bundles):
    channel, user, dest = setup
    code, out, err = relreq(
        "client",
        "fetch",
        "--channel",
        channel,
        "--client-id",
        "ws-0001",
        "--dest",
        str(dest),
        "--json",
        token=user.token,
    )
    assert code == 0, err
    result = json.loads(out)
    assert (result["version"], result["installed"], result["previous"]) == (releases.v1, True, None)
    assert os.readlink(dest / "current") == f"versions/{releases.v1}"
    for name in ("rules.yarc", "allowlist.tsv", "manifest.json", "manifest.sig"):
        assert (dest / "current" / name).read_bytes() == (bundles.v1 / name).read_bytes()

    with db.transaction(world.sessions) as s:
        put(s, channel, releases.v2, config=config)
    code, out, err = relreq(
        "client",
        "fetch",
        "--channel",
        channel,
        "--client-id",
        "ws-0001",
        "--dest",
        str(dest),
        "--json",
        token=user.token,
    )
    assert code == 0, err
    assert json.loads(out)["previous"] == releases.v1
    assert os.readlink(dest / "current") == f"versions/{releases.v2}"
    assert sorted(p.name for p in (dest / "versions").iterdir()) == sorted([releases.v1, releases.v2])
    assert (dest / "trusted-key.pem").read_text().startswith("-----BEGIN PUBLIC KEY-----")

    code, out, err = relreq(
        "client", "fetch", "--channel", channel, "--client-id", "ws-0001", "--dest", str(dest), token=user.token
    )
    assert code == 0 and "already installed" in out


def _flip_manifest_hash(path: str, body: bytes) -> tuple[bytes, int]:
    if not path.startswith("/updates/") or not path.endswith("manifest.json"):
        return body, len(body)
    doc = json.loads(body)
    signed = json.loads(doc["manifest_json"])
    name = next(iter(signed["files"]))
    doc["manifest_json"] = doc["manifest_json"].replace(signed["files"][name]["sha256"], "0" * 64)
    out = json.dumps(doc).encode()
    return out, len(out)


def _flip_file_byte(path: str, body: bytes) -> tuple[bytes, int]:
    if "/artifacts/" not in path:
        return body, len(body)
    out = bytes([body[0] ^ 0xFF]) + body[1:]
    return out, len(out)


def _cut_short_lying_length(path: str, body: bytes) -> tuple[bytes, int]:
    if "/artifacts/" not in path:
        return body, len(body)
    return body[: len(body) // 2], len(body)  # the connection closes before Content-Length is reached


def _cut_short_honest_length(path: str, body: bytes) -> tuple[bytes, int]:
    if "/artifacts/" not in path:
        return body, len(body)
    return body[: len(body) // 2], len(body) // 2


@pytest.mark.parametrize(
    ("mutate", "refusal"),
    [
        (_flip_manifest_hash, "signature does not verify"),
        (_flip_file_byte, "has sha256"),
        (_cut_short_lying_length, "cannot talk to"),
        (_cut_short_honest_length, "partial download"),
    ],
    ids=["tampered-manifest", "tampered-file", "connection-cut", "truncated-file"],
)
def test_tampering_in_transit_is_refused_and_nothing_is_installed(
    setup, api_url, releases, world, config, mutate, refusal
):
    channel, user, dest = setup
    fetch(api_url=api_url, channel=channel, client_id="ws-0002", dest=dest, token=user.token)
    with db.transaction(world.sessions) as s:
        put(s, channel, releases.v2, config=config)
    before = snapshot(dest)
    with mitm(api_url, mutate) as proxy, pytest.raises(UpdateFailed, match=refusal):
        fetch(api_url=proxy, channel=channel, client_id="ws-0002", dest=dest, token=user.token)
    assert snapshot(dest) == before
    assert before[0] == f"versions/{releases.v1}"


def test_a_wrong_pinned_key_is_refused_by_the_cli(setup, relreq, tmp_path):
    channel, user, dest = setup
    wrong = tmp_path / "wrong.pem"
    wrong.write_bytes(public_key_pem(Ed25519PrivateKey.generate()))
    code, out, err = relreq(
        "client",
        "fetch",
        "--channel",
        channel,
        "--client-id",
        "ws-0003",
        "--dest",
        str(dest),
        "--public-key",
        str(wrong),
        token=user.token,
    )
    assert code == 2
    assert err.startswith("error: nothing installed: refused:") and "signature does not verify" in err
    assert snapshot(dest) == (None, [])


def test_the_right_pinned_key_installs(setup, relreq, settings, tmp_path, releases):
    channel, user, dest = setup
    pinned = tmp_path / "vendor.pem"
    pinned.write_text(registry.server_public_key_pem(settings.data_dir))
    code, out, err = relreq(
        "client",
        "fetch",
        "--channel",
        channel,
        "--client-id",
        "ws-0004",
        "--dest",
        str(dest),
        "--public-key",
        str(pinned),
        "--json",
        token=user.token,
    )
    assert code == 0, err
    assert json.loads(out)["version"] == releases.v1
    # the pinned key is what the installation trusts from now on (and what `relreq artifacts scan` reads)
    assert (dest / "trusted-key.pem").read_bytes() == pinned.read_bytes()


def test_without_the_customer_token_the_channel_does_not_exist(setup, api_url):
    channel, _, dest = setup
    with pytest.raises(UpdateFailed, match="HTTP 404"):
        fetch(api_url=api_url, channel=channel, client_id="ws-0005", dest=dest)
    assert snapshot(dest)[0] is None


def test_a_rotten_object_in_the_server_store_is_never_shipped(world, api_url, fresh_base, settings, config, tmp_path):
    """A file altered on the server's disk: the server refuses to serve it, the client installs nothing."""
    store = LocalStore(settings.artifacts_dir)
    channel = f"customer-{world.customer()}"
    with db.transaction(world.sessions) as s:
        release = registry.register_release(
            s,
            actor=SYSTEM,
            bundle_dir=fresh_base,
            store=store,
            request_id=None,
            public_key=registry.server_public_key(settings.data_dir),
        )
        put(s, channel, release.version, config=config)
    user = world.user("customer", channel.removeprefix("customer-"))
    sha = next(sha for sha, f in release.files.items() if f["name"] == "allowlist.tsv")
    with store.open(sha) as f:
        path, original = Path(f.name), f.read()
    os.chmod(path, 0o644)
    try:
        path.write_bytes(original + b"# injected\n")
        dest = tmp_path / "base"
        with pytest.raises(UpdateFailed, match="HTTP 500"):
            fetch(api_url=api_url, channel=channel, client_id="ws-0006", dest=dest, token=user.token)
        assert snapshot(dest) == (None, ["trusted-key.pem"])
    finally:
        path.write_bytes(original)
        os.chmod(path, 0o444)


def test_file_urls_pointing_to_another_host_are_ignored(setup, api_url, releases):
    """A rewritten `url` must not take the customer's token elsewhere: the client stays on its server."""

    def elsewhere(path: str, body: bytes) -> tuple[bytes, int]:
        if not path.endswith("manifest.json"):
            return body, len(body)
        doc = json.loads(body)
        for f in doc["files"]:
            f["url"] = f"http://127.0.0.1:9/steal/{f['sha256']}"
        out = json.dumps(doc).encode()
        return out, len(out)

    channel, user, dest = setup
    with mitm(api_url, elsewhere) as proxy:
        result = fetch(api_url=proxy, channel=channel, client_id="ws-0007", dest=dest, token=user.token)
    assert result.installed and result.version == releases.v1


def test_enrol_saves_the_credential_that_fetch_and_report_use(setup, relreq, releases, world, tmp_path):
    """`relreq client enrol` keeps the server-issued credential in DEST (0600, secret never printed); fetch
    uses its client id, `relreq client report` its secret; once revoked, reports are refused."""
    channel, user, dest = setup
    code, out, err = relreq("client", "enrol", "--dest", str(dest), "--name", "ws-0042", "--json", token=user.token)
    assert code == 0, err
    enrolled = json.loads(out)
    saved = json.loads((dest / CREDENTIAL).read_text())
    assert saved["client_id"] == enrolled["client_id"] and saved["secret"].startswith("rrc_")
    assert (dest / CREDENTIAL).stat().st_mode & 0o777 == 0o600
    assert saved["secret"] not in out + err and "secret" not in enrolled
    assert (enrolled["organisation"], enrolled["name"]) == (user.customer_id, "ws-0042")

    code, _, err = relreq("client", "enrol", "--dest", str(dest), token=user.token)
    assert code == 1 and f"already enrolled as {saved['client_id']}" in err

    code, out, err = relreq("client", "fetch", "--channel", channel, "--dest", str(dest), "--json", token=user.token)
    assert code == 0, err
    assert json.loads(out)["version"] == releases.v1
    code, _, err = relreq(
        "client", "fetch", "--channel", channel, "--client-id", "ws-other", "--dest", str(dest), token=user.token
    )
    assert code == 2 and f"enrolled as client {saved['client_id']}, not ws-other" in err

    sha = os.urandom(32).hex()
    detections = tmp_path / "detections.json"
    found = {"base_version": releases.v1, "rule": "trojan.Trojan_Win32_Dropper_001", "file_sha256": sha}
    detections.write_text(json.dumps([found | {"verdict": "quarantined"}]))
    code, out, err = relreq("client", "report", "--dest", str(dest), "--detections", str(detections), "--json")
    assert code == 0, err
    assert json.loads(out) == {"accepted": 1}
    with db.transaction(world.sessions) as s:
        row = s.scalar(select(TelemetryDetection).where(TelemetryDetection.file_sha256 == sha))
        assert (row.client_id, row.verdict) == (saved["client_id"], "quarantined")

    code, out, err = relreq("client", "list", "--json", token=user.token)
    assert [c["client_id"] for c in json.loads(out)] == [saved["client_id"]]
    code, out, err = relreq("client", "revoke", saved["client_id"], token=user.token)
    assert code == 0 and "revoked" in out, err
    code, _, err = relreq("client", "report", "--dest", str(dest), "--detections", str(detections))
    assert code == 1 and err.count("\n") == 1 and "HTTP 401" in err and "revoked" in err


def test_report_refuses_an_unenrolled_or_exposed_install(relreq, tmp_path):
    detections = tmp_path / "detections.json"
    detections.write_text("[]")
    code, _, err = relreq("client", "report", "--dest", str(tmp_path / "nowhere"), "--detections", str(detections))
    assert code == 1 and "is not enrolled" in err
    exposed = tmp_path / "exposed"
    exposed.mkdir()
    (exposed / CREDENTIAL).write_text(json.dumps({"client_id": "uc-0123456789abcdef", "secret": "rrc_" + "x" * 40}))
    os.chmod(exposed / CREDENTIAL, 0o644)
    code, _, err = relreq("client", "report", "--dest", str(exposed), "--detections", str(detections))
    assert code == 1 and "readable by others" in err and "chmod 600" in err
    code, _, err = relreq("client", "report", "--dest", str(exposed), "--detections", str(tmp_path / "missing.json"))
    assert code == 1 and "--detections: cannot read" in err
