"""A real IMAP server for the mail tests: Debian's Dovecot on loopback, in a temporary folder of its own.

`LocalDovecot` writes a configuration that includes nothing from /etc/dovecot (its own `base_dir`,
`state_dir` and `instance_name`, so it never meets a system Dovecot), one passwd-file user with a Maildir,
IMAPS with a throwaway self-signed certificate (`url()` carries `?cafile=` to trust it) and plain IMAP
on a second loopback port. Run as root it needs what Dovecot demands of root (DESIGN.md): login and
internal processes under `dovenull` / `dovecot`, a mail user that is not root with `first_valid_uid` at
or below it, and no chroot for the services. It starts in a fraction of a second; one per test module.

Dovecot's own log (`log_text()`) is the first thing to read when a mail test fails.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

from imapclient import IMAPClient

from devservers import free_port, self_signed_certificate
from devservers.daemon import LocalDaemon

DOVECOT = shutil.which("dovecot") or next((p for p in ("/usr/sbin/dovecot",) if os.access(p, os.X_OK)), None)


@dataclass
class LocalDovecot(LocalDaemon):
    """Dovecot on 127.0.0.1: `imaps_port` (TLS from the first byte) and `imap_port` (plain, loopback only).
    The user name and password need URL-encoding on purpose (`@`, a space, `/`, `%`)."""

    user: str = "support@vendor.example"
    password: str = "p@ss w/rd%1"
    host: str = "127.0.0.1"
    imaps_port: int = field(default_factory=free_port)
    imap_port: int = field(default_factory=free_port)
    idle: bool = True  # False: a server that does not offer IDLE (the poller falls back to polling)
    root: Path | None = None
    _process: subprocess.Popen | None = None

    @property
    def cafile(self) -> Path:
        assert self.root is not None, "not started"
        return self.root / "imap-cert.pem"

    @property
    def log_path(self) -> Path:
        assert self.root is not None, "not started"
        return self.root / "dovecot.log"

    def url(self, mailbox: str = "INBOX", *, tls: bool = True, password: str | None = None) -> str:
        """What RR_IMAP_URL should be set to (`password` overrides the right one, to test a refused login)."""
        secret = self.password if password is None else password
        auth = f"{quote(self.user, safe='')}:{quote(secret, safe='')}@"
        if tls:
            return f"imaps://{auth}{self.host}:{self.imaps_port}/{quote(mailbox)}?cafile={quote(str(self.cafile))}"
        return f"imap://{auth}{self.host}:{self.imap_port}/{quote(mailbox)}"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.root and self.log_path.exists() else ""

    def start(self) -> LocalDovecot:
        if DOVECOT is None:
            raise RuntimeError(
                "the mail tests need Dovecot (Debian package dovecot-imapd): run `make test`, which installs it"
            )
        # not under pytest's tmp dirs: those are 0700 for root, and the mail processes run as another user
        self.root = Path(tempfile.mkdtemp(prefix="rr-dovecot-"))
        self.root.chmod(0o755)
        mail_uid, mail_gid, login_user, internal_user = self._users()
        home = self.root / "home"
        home.mkdir()
        os.chown(home, mail_uid, mail_gid)
        self_signed_certificate(self.root, self.host, name="imap")
        (self.root / "passwd").write_text(f"{self.user}:{{PLAIN}}{self.password}:{mail_uid}:{mail_gid}::{home}::\n")
        (self.root / "dovecot.conf").write_text(
            _CONFIG.format(
                root=self.root,
                instance=f"rr-test-{self.imaps_port}",
                host=self.host,
                imap_port=self.imap_port,
                imaps_port=self.imaps_port,
                login_user=login_user,
                internal_user=internal_user,
                first_valid_uid=min(mail_uid, 500),
            )
            + ("" if self.idle else "imap_capability = IMAP4rev1 LITERAL+ UIDPLUS ENABLE NAMESPACE\n")
        )
        self._process = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(self.root / "dovecot.conf")],
            stdout=subprocess.DEVNULL,
            stderr=open(self.root / "dovecot.stderr", "wb"),  # noqa: SIM115 - the child holds it open
        )
        self._wait_until_listening()
        return self

    def _users(self) -> tuple[int, int, str, str]:
        """(mail uid, mail gid, login user, internal user): as root `nobody` reads the mail and Dovecot's own
        unprivileged users do the rest; as anyone else, that user does everything."""
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            return nobody.pw_uid, nobody.pw_gid, "dovenull", "dovecot"
        me = pwd.getpwuid(os.geteuid())
        return me.pw_uid, me.pw_gid, me.pw_name, me.pw_name

    def _wait_until_listening(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            try:
                with socket.create_connection((self.host, self.imap_port), timeout=0.5) as s:
                    if s.recv(64).startswith(b"* OK"):
                        return
            except OSError:
                time.sleep(0.02)
        stderr = (self.root / "dovecot.stderr").read_text(errors="replace")
        self.stop()
        raise RuntimeError(f"Dovecot did not start on {self.host}:{self.imap_port}:\n{stderr}\n{self.log_text()}")

    def client(self) -> IMAPClient:
        """A logged-in IMAPS client (the test's own view of the mailbox: appending, reading flags)."""
        context = ssl.create_default_context(cafile=str(self.cafile))
        client = IMAPClient(self.host, port=self.imaps_port, ssl=True, ssl_context=context, timeout=10)
        client.login(self.user, self.password)
        return client

    def new_mailbox(self) -> str:
        """A mailbox (folder) of its own for one test: a test's fresh database starts its cursor at the first UID,
        so it must not find the messages of the tests before it."""
        name = f"test-{uuid.uuid4().hex[:10]}"
        with self.client() as client:
            client.create_folder(name)
        return name

    def append(self, raw: bytes, mailbox: str = "INBOX", *, arrived: datetime | None = None) -> int:
        """Deliver one message into `mailbox` (IMAP APPEND, as a mail server's delivery would leave it), arrived
        now or at `arrived` (its INTERNALDATE); its UID."""
        with self.client() as client:
            response = client.append(mailbox, raw, msg_time=arrived)
        # `[APPENDUID <uidvalidity> <uid>] Append completed.` (UIDPLUS, which Dovecot offers)
        return int(response.split(b"]")[0].split()[-1])

    def flags(self, mailbox: str = "INBOX") -> dict[int, tuple[bytes, ...]]:
        """Every message's flags by UID (`\\Seen` once the poller has taken it)."""
        with self.client() as client:
            client.select_folder(mailbox, readonly=True)
            uids = client.search("ALL")
            return {uid: data[b"FLAGS"] for uid, data in client.fetch(uids, ["FLAGS"]).items()} if uids else {}


_CONFIG = """\
# written by tests/mail/dovecot.py; includes nothing from /etc/dovecot
instance_name = {instance}
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
protocols = imap
listen = {host}
ssl = yes
ssl_cert = <{root}/imap-cert.pem
ssl_key = <{root}/imap-key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
# a refused login is answered at once (the anvil penalty is off below): the tests refuse logins on purpose
auth_failure_delay = 0
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {root}/passwd
}}
mail_location = maildir:~/Maildir
default_login_user = {login_user}
default_internal_user = {internal_user}
first_valid_uid = {first_valid_uid}
mail_max_userip_connections = 50
# IDLE notices a message another connection appended within a second, whatever inotify does
mailbox_idle_check_interval = 1 secs
service imap-login {{
  chroot =
  inet_listener imap {{
    port = {imap_port}
  }}
  inet_listener imaps {{
    port = {imaps_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service ipc {{
  chroot =
}}
"""
