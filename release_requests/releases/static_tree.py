"""The static update tree: every public channel's signed manifest and files as plain files, for any web server.

An antivirus base goes to millions of machines, and none of them should reach Python: a web server or a CDN
serves this directory (`RR_UPDATE_TREE_DIR`, default `RR_DATA_DIR/static`) under the API's own paths, so
`relreq client fetch` works against it unchanged — it trusts signatures, not servers:

    ROOT/updates/public-key.pem
    ROOT/updates/{channel}/manifest.json         the bytes the API answers a client with no token and no client id
    ROOT/updates/{channel}/artifacts/{sha256}    hard links into the artifact store (copies across file systems)

Only public channels are here. A customer's, a hotfix or a staff-only channel — or one whose current or
fallback release is private — stays behind the API. During a canary step the tree holds the fallback (a
static server cannot compute a client's cohort): clients in the canary ring fetch from the API.

A reader sees the old release or the new one, never a mix: files are content-addressed and written before
the manifest, the manifest replaces the old one by one rename, and the files of the manifest it replaced
stay until the next move (a client that read the old manifest completes its download).

A file system is not transactional, so the tree is written after the pointer move commits: `record_move`
notes the channel (`note_moved`), and this module's after-commit hook rewrites it from the committed state.
Errors are logged and never undo the move; `sync_all` (every minute from `reconcile`, or
`relreq release sync-tree`) makes the whole tree match the database again, e.g. after a crash in between.
Writers of one tree take a file lock, and each reads the database only once it holds it, so the last
writer always writes the newest state.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sqlalchemy import event, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from artifacts.errors import ArtifactError
from artifacts.files import fsync_dir, write_atomically
from artifacts.store import LocalStore
from release_requests.errors import NotFound
from release_requests.releases import registry, serving
from release_requests.releases.models import ChannelPointer, Release
from release_requests.releases.naming import CHANNEL_PATTERN
from release_requests.settings import Settings, get_settings

log = logging.getLogger(__name__)

UPDATES, MANIFEST, ARTIFACTS, PUBLIC_KEY = "updates", "manifest.json", "artifacts", "public-key.pem"
_MOVED = "rr_static_tree_channels"  # Session.info: channels whose pointer moved in this transaction
_LOCK = ".lock"
_HOOK_WAIT = 5.0  # seconds a commit's own tree write waits for another writer before leaving it to sync_all


@dataclass
class TreeSync:
    """What one sync did: channels whose manifest it (re)wrote, found as they should be, took out, or could not
    write (logged; the tree keeps what it served before for them)."""

    root: str
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def note_moved(session: Session, channel: str) -> None:
    """Called for every pointer move (`channels.record_move`): once the transaction commits, the channel's
    place in the tree is rewritten from the committed state."""
    session.info.setdefault(_MOVED, set()).add(channel)


@event.listens_for(Session, "after_commit")
def _write_moved(session: Session) -> None:
    """After a commit, rewrite the channels it moved: the tree never shows what the database did not commit."""
    if session.get_nested_transaction() is not None:
        return  # a savepoint was released: nothing is committed yet
    channels = session.info.pop(_MOVED, None)
    if not channels:
        return
    try:
        settings = get_settings()  # the process's own tree: the API, the flows and `relreq` share RR_* settings
        # a commit does not wait long for a writer of the whole tree: the move stands, `sync_all` writes it later
        sync_channels(session.get_bind(), settings, channels, wait=_HOOK_WAIT)
    except Exception as exc:
        log.error(
            "static update tree not updated for %s (%s); the move stands, the next sync_all writes it",
            ", ".join(sorted(channels)),
            exc,
            # a disk or a store problem says it all in one line; anything else is a bug: its traceback
            exc_info=not isinstance(exc, OSError | ArtifactError),
        )


@event.listens_for(Session, "after_transaction_end")
def _forget_moved(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_MOVED, None)  # rolled back (a commit has taken them already)


def sync_channels(
    bind: Engine | Connection, settings: Settings, channels: Iterable[str], *, wait: float | None = None
) -> TreeSync:
    """Rewrite these channels in the tree from the committed state read through `bind`; idempotent. `wait`:
    give up (TimeoutError) when another writer holds the tree longer than that many seconds."""
    tree = _Tree(settings)
    with tree.locked(wait=wait), Session(bind=bind, join_transaction_mode="create_savepoint") as session:
        tree.write_key()
        return tree.sync(session, channels)


def sync_all(sessions: sessionmaker[Session], settings: Settings) -> TreeSync:
    """Make the whole tree match the committed database: every public channel written, anything else under
    `ROOT/updates/` removed. Idempotent and cheap when nothing moved (a read of each manifest); `reconcile`
    runs it every minute, which heals whatever a crash between a commit and its tree write left behind."""
    tree = _Tree(settings)
    with tree.locked(), sessions() as session:
        tree.write_key()
        report = tree.sync(session, session.scalars(select(ChannelPointer.channel)).all())
        report.removed += tree.remove_others(keep={*report.written, *report.unchanged, *report.failed})
    return report


def public_release(session: Session, channel: str) -> serving.Served | None:
    """What the API serves from `channel` to a client without token or client id, or None when the channel
    or its current or fallback release is not public (then it stays out of the tree)."""
    try:
        served = serving.served_release(session, channel=channel, client_id=None, viewer=None)
    except NotFound:
        return None
    versions = [v for v in (served.pointer.version, served.pointer.previous_version) if v]
    private = select(Release.version).where(Release.version.in_(versions), Release.private_to.is_not(None))
    return None if session.scalar(private.limit(1)) else served


class _Tree:
    def __init__(self, settings: Settings) -> None:
        self.root = settings.update_tree
        self.updates = self.root / UPDATES
        self.data_dir = settings.data_dir
        self.store = LocalStore(settings.artifacts_dir)

    @contextmanager
    def locked(self, *, wait: float | None = None) -> Iterator[None]:
        """One writer per tree at a time (threads and processes of this host); `wait` bounds the wait."""
        _public_dir(self.updates)
        fd = os.open(self.root / _LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = None if wait is None else time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | (fcntl.LOCK_NB if deadline is not None else 0))
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise TimeoutError(f"another writer holds {self.root / _LOCK}") from None
                    time.sleep(0.05)
            yield
        finally:
            os.close(fd)  # releases the lock

    def write_key(self) -> None:
        pem = registry.server_public_key_pem(self.data_dir).encode()
        path = self.updates / PUBLIC_KEY
        if not path.is_file() or path.read_bytes() != pem:
            write_atomically(path, pem)

    def sync(self, session: Session, channels: Iterable[str]) -> TreeSync:
        report = TreeSync(root=str(self.root))
        for channel in sorted(set(channels)):
            if not re.fullmatch(CHANNEL_PATTERN, channel):
                log.warning("channel %r cannot be a path of the static update tree; left out", channel)
                continue
            served = public_release(session, channel)
            try:
                if served is None:
                    if self._remove(channel):
                        report.removed.append(channel)
                    continue
                body = serving.manifest_body(session, served, registry.server_public_key_pem(self.data_dir))
                written = self._write(channel, body, session.get(Release, served.version).files)
            except (OSError, ArtifactError) as exc:  # one channel's disk or store problem stops no other
                log.error("static update tree %s: %s not written (%s)", self.root, channel, exc)
                report.failed.append(channel)
                continue
            (report.written if written else report.unchanged).append(channel)
        return report

    def _write(self, channel: str, body: bytes, files: dict) -> bool:
        """Files first, then the manifest by one rename; the replaced manifest's files are kept. Whether the
        manifest changed."""
        directory = self.updates / channel
        artifacts = directory / ARTIFACTS
        _public_dir(artifacts)
        _remove_temporaries(directory, artifacts)  # left by a crash: no other writer holds the lock
        for sha256 in files:
            self._place(artifacts / sha256, sha256)
        manifest = directory / MANIFEST
        old = manifest.read_bytes() if manifest.is_file() else None
        if old == body:
            return False
        fsync_dir(artifacts)  # the files are durable before a manifest names them
        write_atomically(manifest, body)
        keep = set(files) | _files_named(old)
        for child in artifacts.iterdir():
            if child.name not in keep:
                child.unlink()
        return True

    def _place(self, path: Path, sha256: str) -> None:
        """The verified object from the artifact store under its hash: a hard link, or a copy renamed into place
        when the tree is on another file system. A name that exists is complete (content-addressed, renamed)."""
        if path.exists():
            return
        source = self.store.local_path(sha256)  # checked against the digest: a rotten object is never published
        try:
            os.link(source, path)
            return
        except FileExistsError:
            return
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                raise
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as out, source.open("rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, 0o444)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _remove(self, channel: str) -> bool:
        """Take a channel out: its manifest first, so that no download starts from it, then its files."""
        directory = self.updates / channel
        if not directory.exists():
            return False
        (directory / MANIFEST).unlink(missing_ok=True)
        fsync_dir(directory)
        shutil.rmtree(directory)
        return True

    def remove_others(self, *, keep: set[str]) -> list[str]:
        """Everything under `ROOT/updates/` that is not the key or a public channel (a channel gone private,
        a temporary file left by a crash); the channels removed."""
        removed = []
        for child in sorted(self.updates.iterdir()):
            if child.name == PUBLIC_KEY or child.name in keep:
                continue
            if child.is_dir() and not child.name.startswith("."):
                self._remove(child.name)
                removed.append(child.name)
            elif child.is_dir():
                shutil.rmtree(child)
            else:
                child.unlink()
        return removed


def _files_named(manifest: bytes | None) -> set[str]:
    """The sha256 of every file a manifest of this tree names (none if it is missing or unreadable)."""
    if manifest is None:
        return set()
    try:
        return {f["sha256"] for f in json.loads(manifest)["files"]}
    except (ValueError, KeyError, TypeError):
        return set()


def _public_dir(path: Path) -> None:
    """A folder of the tree (and any parent it needs): readable by the web server whatever this process's umask."""
    if path.is_dir():
        return
    if not path.parent.exists():
        _public_dir(path.parent)
    path.mkdir(exist_ok=True)
    path.chmod(0o755)


def _remove_temporaries(*directories: Path) -> None:
    for directory in directories:
        for child in directory.iterdir():
            if child.name.startswith(".") and child.is_file():
                child.unlink()


NGINX_SERVER = """\
# The static update tree of release-requests (docs/releases.md, "The static update tree"). Only what is in
# the tree is served: signed manifests (revalidated on every request), content-addressed files (cached for a
# year: their bytes never change), the public key. No listings, no temporary files.
server {{
    listen {listen};
    server_name {server_name};
    root "{root}";
    autoindex off;
    log_not_found off;
    sendfile on;
    tcp_nopush on;
    etag on;

    location ~ /\\. {{
        return 404;  # temporary files while a move is written
    }}
    location = /updates/public-key.pem {{
        types {{ }}
        default_type application/x-pem-file;
        add_header Cache-Control "no-cache" always;
    }}
    location ~ ^/updates/[a-z0-9][a-z0-9._-]*/manifest\\.json$ {{
        types {{ }}
        default_type application/json;
        add_header Cache-Control "no-cache" always;
    }}
    location ~ "^/updates/[a-z0-9][a-z0-9._-]*/artifacts/([0-9a-f]{{64}})$" {{
        types {{ }}
        default_type application/octet-stream;
        add_header Cache-Control "public, max-age=31536000, immutable";
        add_header X-Content-SHA256 $1;
    }}
    location / {{
        return 404;
    }}
}}
"""


def nginx_server_block(*, root: Path, listen: str = "80", server_name: str = "_") -> str:
    """An nginx `server` block serving the tree at `root` (what `relreq release nginx-config` prints and the
    tests run)."""
    return NGINX_SERVER.format(root=root.resolve(), listen=listen, server_name=server_name)
