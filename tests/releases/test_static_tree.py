"""The static update tree served by a real nginx: it always matches what the API serves to an anonymous client,
private channels never appear in it, and a client fetching from it while channels move gets the old release or
the new one — never a mix.

The tree is this module's own (`RR_UPDATE_TREE_DIR`, a world-readable folder: nginx's workers run as `nobody`),
written by the publishing hook after each commit exactly as in production; nginx runs the server block that
`relreq release nginx-config` prints. Bases that must differ in their files are real: each carries one more
real false-positive fix (one more allowlist line) on a branch of its own, on top of the shared fixed commit.
Afterwards `global` is reverted to a base of that shared commit, so later tests publish there as before.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import git
import httpx
import pytest

from artifacts.corpus import load_corpus
from artifacts.fixes import fix_false_positive
from artifacts.store import LocalStore
from devservers import LocalNginx, free_port
from release_requests import db
from release_requests.clock import db_now
from release_requests.people.models import Person
from release_requests.releases import registry, stopping
from release_requests.releases.cohorts import in_cohort
from release_requests.releases.models import ChannelPointer
from release_requests.releases.static_tree import nginx_server_block, sync_all
from release_requests.releases.telemetry import HaltDecision
from release_requests.settings import get_settings
from release_requests.update_client import fetch
from tests.artifacts.conftest import FP_RULE
from tests.conftest import REPO
from tests.releases.fixtures import AUTHOR, FP_REQUEST, SYSTEM, put

IMMUTABLE = "public, max-age=31536000, immutable"


@pytest.fixture(scope="module")
def tree() -> Iterator[Path]:
    """This module's tree, outside pytest's 0700 folders: nginx reads it as `nobody`, as a web server would."""
    root = Path(tempfile.mkdtemp(prefix="rr-update-tree-"))
    root.chmod(0o755)
    before = os.environ.get("RR_UPDATE_TREE_DIR")
    os.environ["RR_UPDATE_TREE_DIR"] = str(root)
    get_settings.cache_clear()
    yield root
    if before is None:
        os.environ.pop("RR_UPDATE_TREE_DIR", None)
    else:
        os.environ["RR_UPDATE_TREE_DIR"] = before
    get_settings.cache_clear()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def nginx(tree, world) -> Iterator[str]:
    """nginx serving the tree, started once; the tree first written whole from the shared database."""
    sync_all(world.sessions, get_settings())
    port = free_port()
    with LocalNginx(server=nginx_server_block(root=tree, listen=f"127.0.0.1:{port}"), port=port) as server:
        yield server.url


@dataclass
class Line:
    """Bases for `global`: `anchor` on the shared fixed commit, then each `next()` one more real fix on top."""

    world: object
    bundles: object
    settings: object
    anchor: str = ""
    built: list[str] = field(default_factory=list)

    def register(self, bundle: Path) -> str:
        with db.transaction(self.world.sessions) as s:
            return registry.register_release(
                s,
                actor=SYSTEM,
                bundle_dir=bundle,
                store=LocalStore(self.settings.artifacts_dir),
                request_id=None,
                public_key=registry.server_public_key(self.settings.data_dir),
            ).version

    def next(self) -> str:
        """A new base whose allowlist has one more entry: its files differ from every earlier one's."""
        n = len(self.built) + 1
        repo = git.Repo(self.bundles.repo)
        sample = next(s for s in load_corpus(repo.commit(f"fix/{FP_REQUEST}")).malicious if s.expect == FP_RULE)
        path = self.bundles.out.parent / f"tree-sample-{n}.exe"
        path.write_bytes(f"MZ in-house tool {n} for the tree tests ".encode() + sample.render())
        branch = "fix/static-tree-line"
        fix_false_positive(
            repo_path=self.bundles.repo,
            sample=path,
            request_id=f"RR-2026-97000{n}",
            author=AUTHOR,
            base=branch if n > 1 else f"fix/{FP_REQUEST}",
            branch=branch,
        )
        self.built.append(self.register(self.bundles.build_base(self.settings, ref=branch)))
        return self.built[-1]


@pytest.fixture(scope="module")
def line(world, bundles, settings, releases, config, nginx) -> Iterator[Line]:
    line = Line(world, bundles, settings)
    line.anchor = line.register(bundles.build_base(settings))
    move("global", line.anchor, world=world, config=config)
    yield line
    with db.transaction(world.sessions) as s:  # leave `global` on the shared commit, open for publishing
        pointer = s.get(ChannelPointer, "global", populate_existing=True)
        if pointer.halted_at is not None:
            stopping.resume(s, person=_admin(world, s), channel="global", reason="static tree tests done")
        if pointer.version != line.anchor:
            stopping.revert(s, actor=SYSTEM, channel="global", to_version=line.anchor, reason="tests", config=config)


def _admin(world, session) -> Person:
    return session.get(Person, world.user("admin").id)


def move(channel: str, *versions: str, world, config) -> None:
    """Publish in one committed transaction: the tree is written by the hook once it commits."""
    with db.transaction(world.sessions) as s:
        put(s, channel, *versions, config=config)


def matches_api(api_url: str, tree_url: str, channel: str) -> str | None:
    """Assert that the tree serves what the API serves a client without token or client id — the same manifest
    bytes and every file it names — or nothing when the API does not; the version served (None: not public)."""
    api = httpx.get(f"{api_url}/updates/{channel}/manifest.json")
    static = httpx.get(f"{tree_url}/updates/{channel}/manifest.json")
    assert static.status_code == api.status_code, (channel, api.status_code, static.status_code)
    if api.status_code == 404:
        return None
    assert static.content == api.content
    assert static.headers["content-type"] == "application/json"
    assert static.headers["cache-control"] == "no-cache"
    for entry in api.json()["files"]:
        got = httpx.get(tree_url + entry["url"])
        assert got.status_code == 200, entry
        assert hashlib.sha256(got.content).hexdigest() == entry["sha256"] == got.headers["x-content-sha256"]
        assert len(got.content) == entry["size"]
        assert got.headers["content-type"] == "application/octet-stream"
        assert got.headers["cache-control"] == IMMUTABLE
    return api.json()["version"]


def artifacts_on_disk(tree: Path, channel: str) -> set[str]:
    return {p.name for p in (tree / "updates" / channel / "artifacts").iterdir()}


def files_of(api_url: str, channel: str) -> set[str]:
    return {f["sha256"] for f in httpx.get(f"{api_url}/updates/{channel}/manifest.json").json()["files"]}


def test_tree_follows_publish_revert_and_halt(line, world, config, api_url, nginx, tree):
    assert matches_api(api_url, nginx, "global") == line.anchor
    key = httpx.get(f"{nginx}/updates/public-key.pem")
    assert key.text == httpx.get(f"{api_url}/updates/public-key.pem").text
    assert key.headers["content-type"] == "application/x-pem-file"

    first, second = line.next(), line.next()
    anchor_files = files_of(api_url, "global")
    move("global", first, world=world, config=config)
    assert matches_api(api_url, nginx, "global") == first
    first_files = files_of(api_url, "global")
    assert first_files != anchor_files
    assert artifacts_on_disk(tree, "global") == first_files | anchor_files  # the replaced manifest's stay

    move("global", second, world=world, config=config)
    assert matches_api(api_url, nginx, "global") == second
    second_files = files_of(api_url, "global")
    assert artifacts_on_disk(tree, "global") == second_files | first_files  # the anchor's are gone now

    with db.transaction(world.sessions) as s:
        stopping.revert(s, actor=SYSTEM, channel="global", to_version=None, reason="tree test", config=config)
    assert matches_api(api_url, nginx, "global") == first

    move("global", second, world=world, config=config)
    assert matches_api(api_url, nginx, "global") == second
    with db.transaction(world.sessions) as s:
        decision = HaltDecision(
            channel="global", version=second, revert_to=first, request_id=None, reason="telemetry (tree test)"
        )
        stopping.halt(s, channel="global", decision=decision, config=config, now=db_now(s))
    assert matches_api(api_url, nginx, "global") == first
    with db.transaction(world.sessions) as s:
        stopping.resume(s, person=_admin(world, s), channel="global", reason="tree test: halt checked")


def test_private_channels_stay_behind_the_api(line, world, releases, config, api_url, nginx, tree):
    customer = world.customer()
    hotfix_channel = f"hotfix-{releases.hotfix_customer}-endpoint-agent"
    move(f"customer-{customer}", line.anchor, world=world, config=config)
    move(hotfix_channel, releases.hotfix, world=world, config=config)
    move("hotfix-internal-endpoint-agent", releases.hotfix, world=world, config=config)
    move("internal", line.anchor, world=world, config=config)
    owner = world.user("customer", customer)
    for channel in (f"customer-{customer}", hotfix_channel, "hotfix-internal-endpoint-agent", "internal"):
        assert matches_api(api_url, nginx, channel) is None
        assert not (tree / "updates" / channel).exists()
    mine = httpx.get(f"{api_url}/updates/customer-{customer}/manifest.json", headers=owner.headers)
    assert mine.status_code == 200  # the API still serves it to whom it belongs


def test_canary_tree_serves_the_fallback(line, world, bundles, settings, config, api_url, nginx):
    old, new = line.register(bundles.build_base(settings)), line.register(bundles.build_base(settings))
    move("canary", old, new, world=world, config=config)  # `new` at the first canary step, `old` the fallback
    with db.transaction(world.sessions) as s:
        assert s.get(ChannelPointer, "canary").rollout_percent < 100
        percent = s.get(ChannelPointer, "canary").rollout_percent
    assert matches_api(api_url, nginx, "canary") == old
    inside = next(
        c for c in (f"ring-{i}" for i in range(10_000)) if in_cohort(channel="canary", client_id=c, percent=percent)
    )
    ring = {"X-Client-Id": inside}
    assert httpx.get(f"{api_url}/updates/canary/manifest.json", headers=ring).json()["version"] == new
    static = httpx.get(f"{nginx}/updates/canary/manifest.json", headers=ring)
    assert static.json()["version"] == old  # a static server cannot compute cohorts: the ring uses the API


def test_client_fetching_during_publishes_gets_old_or_new_never_a_mix(line, world, config, settings, nginx, tmp_path):
    """Two update clients fetch from nginx in a loop while `global` moves. Before each next move the publisher
    waits until every client has completed two fetches that began after the last one, so no fetch spans more
    than one move (the tree, like the API, keeps the files of the manifest it replaced for one move)."""
    versions = [line.next() for _ in range(4)]
    with db.transaction(world.sessions) as s:
        served = [s.get(ChannelPointer, "global", populate_existing=True).version]  # served[k]: after move k
    pem = registry.server_public_key_pem(settings.data_dir).encode()
    changed = threading.Condition()
    moves = 0
    done: dict[int, list[int]] = {0: [], 1: []}  # per client: the move count seen when each fetch began
    results: list[tuple[int, str]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def client(number: int) -> None:
        dest = tmp_path / f"client-{number}"
        while not stop.is_set():
            with changed:
                began = moves
            try:
                result = fetch(
                    api_url=nginx, channel="global", client_id=f"tree-{number}", dest=dest, public_key_pem=pem
                )
            except Exception as exc:  # an UpdateFailed here is the failure this test looks for
                errors.append(exc)
                stop.set()
            with changed:
                if not errors:
                    results.append((began, result.version))
                done[number].append(began)
                changed.notify_all()

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in done]
    for t in threads:
        t.start()
    try:
        for version in versions:
            move("global", version, world=world, config=config)
            with changed:
                moves += 1
                served.append(version)
                after = moves
                ok = changed.wait_for(
                    lambda after=after: stop.is_set() or all(sum(b >= after for b in d) >= 2 for d in done.values()),
                    timeout=120,
                )
            assert ok, "the clients stopped fetching"
            assert not errors, errors
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert not errors, errors
    assert len(results) >= 2 * 2 * len(versions)
    for began, version in results:
        assert version in served[began : began + 2], (began, version, served)  # the old or the new
    assert set(versions) <= {v for _, v in results}  # every release was installed
    for n in done:
        installed = tmp_path / f"client-{n}" / "current"
        assert installed.resolve().name == versions[-1]


def test_relreq_client_fetch_against_nginx(line, relreq, settings, nginx, api_url, tmp_path):
    key = tmp_path / "vendor.pem"
    key.write_text(registry.server_public_key_pem(settings.data_dir))
    dest = tmp_path / "av-base"
    args = ("client", "fetch", "--channel", "global", "--dest", str(dest), "--client-id", "pc-0001")
    code, out, err = relreq(*args, "--public-key", str(key), "--api-url", nginx, "--json")
    assert code == 0, err
    served = httpx.get(f"{api_url}/updates/global/manifest.json").json()["version"]
    assert '"installed": true' in out and served in out
    assert (dest / "current").resolve().name == served


def test_a_failed_tree_write_never_fails_the_move_and_sync_heals(
    line, world, config, api_url, nginx, tree, relreq, monkeypatch, caplog, tmp_path
):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    monkeypatch.setenv("RR_UPDATE_TREE_DIR", str(blocked / "tree"))
    get_settings.cache_clear()
    version = line.next()
    with caplog.at_level(logging.ERROR, logger="release_requests.releases.static_tree"):
        move("global", version, world=world, config=config)
    assert any("not updated for global" in r.getMessage() for r in caplog.records)
    with db.transaction(world.sessions) as s:
        assert s.get(ChannelPointer, "global", populate_existing=True).version == version  # the move stands

    monkeypatch.setenv("RR_UPDATE_TREE_DIR", str(tree))
    get_settings.cache_clear()
    stale = tree / "updates" / "customer-gone"  # a channel that is not public (any more): taken out
    (stale / "artifacts").mkdir(parents=True)
    (stale / "manifest.json").write_text("{}")
    behind = httpx.get(f"{nginx}/updates/global/manifest.json").json()["version"]
    assert behind != version  # the tree is behind the database...
    code, out, err = relreq("release", "sync-tree", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert (report["written"], report["removed"]) == (["global"], ["customer-gone"])
    assert matches_api(api_url, nginx, "global") == version  # ...until a sync, which heals it
    assert not stale.exists()
    code, out, err = relreq("release", "sync-tree")
    assert code == 0 and "0 channels written" in out and "0 removed" in out  # idempotent


def test_a_channel_that_cannot_be_written_is_reported_and_kept(line, api_url, nginx, tree, relreq):
    channel = tree / "updates" / "global"
    shutil.rmtree(channel)
    channel.write_text("in the way")  # e.g. a disk problem under one channel
    code, out, err = relreq("release", "sync-tree", "--json")
    assert code == 1
    assert json.loads(out)["failed"] == ["global"]
    assert "channels not written to the update tree: global" in err
    assert channel.read_text() == "in the way"  # a failed channel is not removed as if it were gone
    channel.unlink()
    code, out, err = relreq("release", "sync-tree", "--json")
    assert code == 0, err
    assert json.loads(out)["written"] == ["global"]
    assert matches_api(api_url, nginx, "global") is not None


def test_nginx_config_command_prints_the_documented_block(relreq, tree):
    code, out, err = relreq("release", "nginx-config", "--listen", "8080", "--server-name", "updates.example.com")
    assert code == 0, err
    assert out == nginx_server_block(root=tree, listen="8080", server_name="updates.example.com")
    documented = nginx_server_block(
        root=Path("/var/lib/release-requests/static"), listen="80", server_name="updates.example.com"
    )
    assert documented in (REPO / "docs" / "releases.md").read_text()  # the docs show what the code prints
