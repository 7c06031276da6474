"""A Slack workspace without the internet: a local server speaking the Slack Web API.

Used by the tests, the latency benchmark and `relreq demo`. `LocalSlack` speaks the Web API methods the
deliverer uses (auth.test, conversations.list/open/history, chat.postMessage/update) over real HTTP, the
way slack-sdk's own test suite does, records every call and can be told to fail: 429 with Retry-After,
500, a dropped connection, invalid_auth, channel_not_found. `signed_interaction()` builds a button press
signed the way Slack signs it (v0 HMAC-SHA256), written here from Slack's documentation rather than
imported from the product, so that the product's verification is checked against an independent signer.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

FAILURES = {"rate_limited", "server_error", "drop", "invalid_auth", "channel_not_found"}


@dataclass
class SlackCall:
    method: str
    params: dict
    at: float  # time.time() when the call arrived
    answered: str  # "ok", an error code, or "dropped"


@dataclass
class _Failure:
    kind: str
    method: str | None
    channel: str | None  # an id
    retry_after: int


class LocalSlack:
    """A Slack workspace in one process. Channels are created with `add_channel` (or on first use when
    `auto_create_channels`); posting to an unknown one answers channel_not_found, like Slack."""

    def __init__(
        self,
        *,
        token: str = "xoxb-local",
        channels: tuple[str, ...] = (),
        auto_create_channels: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.tokens = {token}
        self.token = token
        self.auto_create_channels = auto_create_channels
        self.calls: list[SlackCall] = []
        self.channels: dict[str, dict] = {}  # id → {"name", "messages": [...]}
        self._failures: list[_Failure] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._last_ts = 0.0
        for name in channels:
            self.add_channel(name)
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # --- control -------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/api/"

    def start(self) -> LocalSlack:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="local-slack", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> LocalSlack:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def add_channel(self, name: str, *, prefix: str = "C") -> str:
        with self._lock:
            for cid, channel in self.channels.items():
                if channel["name"] == name:
                    return cid
            cid = f"{prefix}{next(self._ids):08d}"
            self.channels[cid] = {"name": name, "messages": []}
            return cid

    def fail(
        self, kind: str, *, method: str | None = None, channel: str | None = None, times: int = 1, retry_after: int = 1
    ) -> None:
        """Answer the next `times` calls (to `method` and/or about `channel`, or any) with `kind`."""
        if kind not in FAILURES:
            raise ValueError(f"unknown failure '{kind}' (one of {sorted(FAILURES)})")
        cid = self._resolve(channel.removeprefix("#"), create=False) if channel else None
        with self._lock:
            self._failures += [_Failure(kind, method, cid, retry_after) for _ in range(times)]

    def messages(self, channel: str) -> list[dict]:
        """Messages of a channel (by id or name), oldest first, with their metadata."""
        cid = self._resolve(channel.removeprefix("#"), create=False)
        return [dict(m) for m in self.channels[cid]["messages"]] if cid else []

    def all_messages(self) -> list[dict]:
        return [dict(m, channel=cid) for cid, c in self.channels.items() for m in c["messages"]]

    def calls_to(self, method: str) -> list[SlackCall]:
        return [c for c in self.calls if c.method == method]

    # --- the Web API ---------------------------------------------------------------------------
    def _resolve(self, ref: str, *, create: bool) -> str | None:
        if ref in self.channels:
            return ref
        for cid, channel in self.channels.items():
            if channel["name"] == ref:
                return cid
        if create:
            return self.add_channel(ref, prefix="D" if ref[:1] in "UW" else "C")
        return None

    def _next_ts(self) -> str:
        with self._lock:
            self._last_ts = max(time.time(), self._last_ts + 0.000001)
            return f"{self._last_ts:.6f}"

    def _take_failure(self, method: str, params: dict) -> _Failure | None:
        cid = self._resolve(str(params.get("channel", "")).removeprefix("#"), create=False)
        with self._lock:
            for i, failure in enumerate(self._failures):
                if failure.method in (None, method) and failure.channel in (None, cid):
                    return self._failures.pop(i)
        return None

    def _dispatch(self, method: str, params: dict) -> tuple[int, dict, dict]:
        """(HTTP status, body, headers) for one call."""
        if method == "auth.test":
            return (
                200,
                {
                    "ok": True,
                    "url": "http://local.slack/",
                    "team": "Local",
                    "user": "relreq",
                    "team_id": "T0LOCAL",
                    "user_id": "U0RELREQ",
                    "bot_id": "B0RELREQ",
                },
                {},
            )
        if method == "conversations.list":
            return 200, self._list(params), {}
        if method == "conversations.open":
            user = str(params.get("users", "")).split(",")[0]
            if not user:
                return 200, {"ok": False, "error": "invalid_arguments"}, {}
            return 200, {"ok": True, "channel": {"id": self._resolve(user, create=True)}}, {}
        cid = self._resolve(str(params.get("channel", "")).removeprefix("#"), create=False)
        if cid is None and method == "chat.postMessage" and self.auto_create_channels:
            cid = self._resolve(str(params["channel"]).removeprefix("#"), create=True)
        if cid is None:
            return 200, {"ok": False, "error": "channel_not_found"}, {}
        if method == "chat.postMessage":
            return 200, self._post(cid, params), {}
        if method == "chat.update":
            return 200, self._update(cid, params), {}
        if method == "conversations.history":
            return 200, self._history(cid, params), {}
        return 404, {"ok": False, "error": "unknown_method"}, {}

    def _list(self, params: dict) -> dict:
        limit, start = int(params.get("limit") or 100), int(params.get("cursor") or 0)
        named = [
            {"id": cid, "name": c["name"], "is_channel": True}
            for cid, c in self.channels.items()
            if cid.startswith("C")
        ]
        page = named[start : start + limit]
        more = start + limit < len(named)
        return {"ok": True, "channels": page, "response_metadata": {"next_cursor": str(start + limit) if more else ""}}

    def _post(self, cid: str, params: dict) -> dict:
        blocks = params.get("blocks")
        if isinstance(blocks, str):
            blocks = json.loads(blocks)
        metadata = params.get("metadata")
        if isinstance(metadata, str):
            metadata = json.loads(metadata)
        message = {
            "type": "message",
            "ts": self._next_ts(),
            "user": "U0RELREQ",
            "bot_id": "B0RELREQ",
            "text": params.get("text", ""),
            "blocks": blocks or [],
            "metadata": metadata,
            "received_at": time.time(),
        }
        with self._lock:
            self.channels[cid]["messages"].append(message)
        return {"ok": True, "channel": cid, "ts": message["ts"], "message": _public(message, with_metadata=True)}

    def _update(self, cid: str, params: dict) -> dict:
        with self._lock:
            for message in self.channels[cid]["messages"]:
                if message["ts"] == params.get("ts"):
                    blocks = params.get("blocks")
                    message.update(
                        text=params.get("text", message["text"]),
                        blocks=json.loads(blocks) if isinstance(blocks, str) else blocks or [],
                        edited={"ts": self._last_ts},
                    )
                    return {"ok": True, "channel": cid, "ts": message["ts"], "text": message["text"]}
        return {"ok": False, "error": "message_not_found"}

    def _history(self, cid: str, params: dict) -> dict:
        oldest = float(params.get("oldest") or 0)
        latest = float(params.get("latest") or "inf")
        with_metadata = str(params.get("include_all_metadata", "")).lower() in ("1", "true")
        limit, start = int(params.get("limit") or 100), int(params.get("cursor") or 0)
        with self._lock:
            selected = [m for m in reversed(self.channels[cid]["messages"]) if oldest <= float(m["ts"]) <= latest]
        page = selected[start : start + limit]
        more = start + limit < len(selected)
        return {
            "ok": True,
            "messages": [_public(m, with_metadata=with_metadata) for m in page],
            "has_more": more,
            "response_metadata": {"next_cursor": str(start + limit) if more else ""},
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        slack = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _params(self) -> dict:
                url = urlsplit(self.path)
                params = {k: v[0] for k, v in parse_qs(url.query).items()}
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if body and "json" in (self.headers.get("Content-Type") or ""):
                    params.update(json.loads(body))
                elif body:
                    params.update({k: v[0] for k, v in parse_qs(body.decode()).items()})
                return params

            def _handle(self) -> None:
                method = urlsplit(self.path).path.removeprefix("/api/")
                params = self._params()
                token = (self.headers.get("Authorization") or "").removeprefix("Bearer ") or params.get("token")
                failure = slack._take_failure(method, params)
                headers: dict = {}
                if failure is not None and failure.kind == "drop":
                    slack.calls.append(SlackCall(method, params, time.time(), "dropped"))
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if failure is not None and failure.kind == "rate_limited":
                    status, body, headers = (
                        429,
                        {"ok": False, "error": "ratelimited"},
                        {"Retry-After": str(failure.retry_after)},
                    )
                elif failure is not None and failure.kind == "server_error":
                    status, body = 500, {"ok": False, "error": "fatal_error"}
                elif failure is not None:
                    status, body = 200, {"ok": False, "error": failure.kind}
                elif token not in slack.tokens:
                    status, body = 200, {"ok": False, "error": "invalid_auth"}
                else:
                    status, body, headers = slack._dispatch(method, params)
                slack.calls.append(SlackCall(method, params, time.time(), "ok" if body.get("ok") else body["error"]))
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _handle

        return Handler


def _public(message: dict, *, with_metadata: bool) -> dict:
    shown = {k: v for k, v in message.items() if k not in ("received_at", "metadata")}
    if with_metadata and message.get("metadata"):
        shown["metadata"] = message["metadata"]
    return shown


def signed_interaction(
    payload: dict | bytes, *, signing_secret: str, timestamp: int | None = None
) -> tuple[bytes, dict]:
    """The body and headers Slack would send to /slack/interactions for `payload` (a button press), signed
    the way Slack signs; raw `bytes` are sent as they are (for tests of bodies Slack would never send)."""
    body = payload if isinstance(payload, bytes) else urlencode({"payload": json.dumps(payload)}).encode()
    ts = str(int(time.time()) if timestamp is None else timestamp)
    headers = {
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": slack_signature(signing_secret, ts, body),
        "Content-Type": "application/x-www-form-urlencoded",
    }
    return body, headers


def slack_signature(signing_secret: str, timestamp: str, body: bytes) -> str:
    """Slack's v0 request signature: `v0=` + hex HMAC-SHA256 of `v0:{timestamp}:{body}` with the signing secret."""
    base = b"v0:" + timestamp.encode("ascii") + b":" + body
    return "v0=" + hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()
