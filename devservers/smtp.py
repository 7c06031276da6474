"""E-mail without the internet: an aiosmtpd SMTP server with optional AUTH and STARTTLS.

`LocalSmtp` keeps what it receives, can be stopped and started again (an outage) or told to answer 451,
and makes a throwaway self-signed certificate (with `cryptography`) for STARTTLS. Needs the `demo` extra
(`pip install 'release-requests[demo]'`, which the `test` extra includes).
"""

from __future__ import annotations

import logging
import ssl
import tempfile
import time
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import quote

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from devservers.net import free_port
from devservers.tls import self_signed_certificate


@dataclass
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    at: float  # time.time() when the server accepted it
    authenticated_as: str | None

    @property
    def message_id(self) -> str:
        return self.message["Message-ID"]


@dataclass
class LocalSmtp:
    """An SMTP server on a free port. With `user`/`password` it requires AUTH; with `starttls` it requires
    STARTTLS before AUTH and mail. `url` is what RR_SMTP_URL should be set to."""

    user: str | None = None
    password: str | None = None
    starttls: bool = False
    host: str = "127.0.0.1"
    port: int = field(default_factory=free_port)
    received: list[ReceivedMail] = field(default_factory=list)
    _rejections: list[tuple[int, str]] = field(default_factory=list)
    _controller: object | None = None
    _certdir: Path | None = None

    @property
    def cafile(self) -> Path | None:
        return self._certdir / "smtp-cert.pem" if self._certdir else None

    @property
    def url(self) -> str:
        scheme = "smtp+starttls" if self.starttls else "smtp"
        auth = f"{quote(self.user, safe='')}:{quote(self.password or '', safe='')}@" if self.user else ""
        query = f"?cafile={quote(str(self.cafile))}" if self.cafile else ""
        return f"{scheme}://{auth}{self.host}:{self.port}{query}"

    def reject_next(self, times: int = 1, *, code: int = 451, text: str = "4.3.0 Try again later") -> None:
        """Answer DATA of the next `times` messages with `code` (4xx: temporary, 5xx: permanent)."""
        self._rejections += [(code, text)] * times

    def start(self) -> LocalSmtp:
        # aiosmtpd's own AUTH code trips its deprecation warning for `login_data` on every login
        logging.getLogger("mail.log").setLevel(logging.ERROR)

        kwargs: dict = {}
        if self.starttls:
            if self._certdir is None:
                self._certdir = Path(tempfile.mkdtemp(prefix="rr-smtp-"))
                self_signed_certificate(self._certdir, self.host)
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(self._certdir / "smtp-cert.pem", self._certdir / "smtp-key.pem")
            kwargs.update(tls_context=context, require_starttls=True)
        if self.user:

            def authenticate(server, session, envelope, mechanism, auth_data) -> AuthResult:
                ok = auth_data.login.decode() == self.user and auth_data.password.decode() == (self.password or "")
                return AuthResult(success=ok, handled=False, auth_data=auth_data.login.decode() if ok else None)

            kwargs.update(authenticator=authenticate, auth_required=True, auth_require_tls=self.starttls)
        self._controller = Controller(_Handler(self), hostname=self.host, port=self.port, **kwargs)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> LocalSmtp:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def message_ids(self) -> list[str]:
        return [m.message_id for m in self.received]


class _Handler:
    def __init__(self, server: LocalSmtp) -> None:
        self.server = server

    async def handle_DATA(self, server, session, envelope) -> str:
        if self.server._rejections:
            code, text = self.server._rejections.pop(0)
            return f"{code} {text}"
        message = message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        self.server.received.append(
            ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos), message, time.time(), session.auth_data)
        )
        return "250 Message accepted for delivery"
