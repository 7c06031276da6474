"""A webhook receiver on this machine: HTTPS (throwaway certificate) or plain HTTP on a loopback address.

It checks every POST the way a receiver of release-requests' webhook should (see docs/notifications.md,
"Webhook"): the `X-RR-Signature` header is `v1=` + hex HMAC-SHA256 over `{X-RR-Timestamp}.{raw body}` with
the shared secret, and the timestamp is at most 5 minutes off. The check is written here from the
documented format, not imported from the product, so the tests hold the sender to the documentation.

A request whose signature does not verify is answered 401 and recorded with `verified=False`. Answers can
be scripted (`respond(500)`, `respond(429, retry_after=30)`, `respond(400)`), otherwise 200.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from devservers.tls import serve_over_tls

MAX_SKEW_SECONDS = 5 * 60


def webhook_signature(secret: str, timestamp: str, body: bytes) -> str:
    """`v1=` + hex HMAC-SHA256(secret, `{timestamp}.` + body): what `X-RR-Signature` must be."""
    return "v1=" + hmac.new(secret.encode(), timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()


def verify_webhook(secret: str, headers, body: bytes, *, now: float | None = None) -> bool:
    """Whether a delivery is authentic and fresh (constant-time comparison)."""
    timestamp = headers.get("X-RR-Timestamp") or ""
    signature = headers.get("X-RR-Signature") or ""
    if not timestamp.isascii() or not timestamp.isdigit():
        return False
    if abs((time.time() if now is None else now) - int(timestamp)) > MAX_SKEW_SECONDS:
        return False
    return hmac.compare_digest(webhook_signature(secret, timestamp, body), signature)


@dataclass
class WebhookDelivery:
    headers: dict[str, str]
    body: bytes
    verified: bool
    answered: int  # the HTTP status this server answered with
    at: float  # time.time() when it arrived

    @property
    def json(self) -> dict:
        return json.loads(self.body)


class LocalWebhook:
    """A receiver on 127.0.0.1 and a free port. With `tls` (the default) it speaks HTTPS with a self-signed
    certificate: give `cafile` to the client. `url` is what RR_WEBHOOK_URL should be set to."""

    def __init__(self, *, secret: str, tls: bool = True, host: str = "127.0.0.1", path: str = "/hooks/rr") -> None:
        self.secret = secret
        self.path = path
        self.received: list[WebhookDelivery] = []
        self._answers: list[tuple[int, int | None]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, 0), self._handler())
        self._server.daemon_threads = True
        self._certdir: Path | None = None
        if tls:
            self._certdir = serve_over_tls(self._server, host, name="webhook")
        self._thread: threading.Thread | None = None

    @property
    def cafile(self) -> Path | None:
        return self._certdir / "webhook-cert.pem" if self._certdir else None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{'https' if self._certdir else 'http'}://{host}:{port}{self.path}"

    def respond(self, status: int, *, times: int = 1, retry_after: int | None = None) -> None:
        """Answer the next `times` authentic deliveries with `status` (then 200 again)."""
        with self._lock:
            self._answers += [(status, retry_after)] * times

    def delivered(self) -> list[WebhookDelivery]:
        """The authentic deliveries this server accepted (answered 2xx)."""
        return [d for d in self.received if d.verified and 200 <= d.answered < 300]

    def start(self) -> LocalWebhook:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="local-webhook", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> LocalWebhook:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _answer(self, verified: bool) -> tuple[int, int | None]:
        if not verified:
            return 401, None
        with self._lock:
            return self._answers.pop(0) if self._answers else (200, None)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hook = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                verified = self.path == hook.path and verify_webhook(hook.secret, self.headers, body)
                status, retry_after = hook._answer(verified)
                hook.received.append(WebhookDelivery(dict(self.headers.items()), body, verified, status, time.time()))
                payload = json.dumps({"ok": 200 <= status < 300, "id": f"delivery-{len(hook.received)}"}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("X-Request-Id", f"delivery-{len(hook.received)}")
                if retry_after is not None:
                    self.send_header("Retry-After", str(retry_after))
                self.end_headers()
                self.wfile.write(payload)

        return Handler
