"""A paging service on this machine: the PagerDuty Events API v2 enqueue endpoint (`POST /v2/enqueue`).

It checks every event the way PagerDuty documents it ("Send an Alert Event", developer.pagerduty.com): a
JSON object with a 32-character `routing_key`, an `event_action` of trigger, acknowledge or resolve, a
`dedup_key` of at most 255 characters (required to acknowledge or resolve; a trigger without one gets a new
one), and for a trigger a `payload` with `summary` (≤ 1024 characters), `source` and `severity` (critical,
error, warning, info), an ISO 8601 `timestamp` if any, `custom_details` an object, `links` and `images` lists
of objects with `href` / `src`. A valid event is answered 202 `{"status": "success", "message": "Event
processed", "dedup_key": …}`; an invalid one 400 `{"status": "invalid event", "message": "Event object is
invalid", "errors": [...]}`. The checks are written here from the documentation, not imported from the
product, so the tests hold the sender to the documentation.

Incidents are kept by `dedup_key` as PagerDuty keeps alerts: a trigger opens one unless one with that key is
open (then it is only logged on it: a resent trigger never opens a second incident); acknowledge and resolve
apply to the open one sent with the same routing key and are dropped otherwise (still 202); after a resolve,
a trigger opens a new incident.

Answers can be scripted: `respond(500)`, `respond(429, retry_after=30)`, `respond(400, errors=[...])` answer
the next events without processing them; `stall(seconds)` processes the next event, then holds its answer
for `seconds` — past the client's timeout, like a paging service that took the event and lost the reply.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from devservers.tls import serve_over_tls

ENQUEUE_PATH = "/v2/enqueue"
ROUTING_KEY_LENGTH = 32
ACTIONS = ("trigger", "acknowledge", "resolve")
SEVERITIES = ("critical", "error", "warning", "info")
MAX_DEDUP_KEY = 255
MAX_SUMMARY = 1024
MAX_BODY = 512 * 1024  # "Events API payloads are limited to 512 KB"


@dataclass
class EventDelivery:
    """One POST as it arrived, and what this server answered."""

    headers: dict[str, str]
    body: bytes
    answered: int
    at: float  # time.time() when it arrived

    @property
    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Incident:
    """One alert as the paging service holds it: opened by a trigger, then acknowledged and resolved."""

    dedup_key: str
    routing_key: str
    status: str  # triggered | acknowledged | resolved
    summary: str
    severity: str
    opened_at: float
    log: list[str] = field(default_factory=list)  # every event applied to it: trigger, trigger, acknowledge, …

    @property
    def open(self) -> bool:
        return self.status != "resolved"


def validate_event(event: object, *, routing_keys: frozenset[str] = frozenset()) -> list[str]:
    """What is wrong with an Events v2 event, as a list of messages (empty: valid). With `routing_keys`, a key
    not among them is refused too (an integration that does not exist)."""
    if not isinstance(event, dict):
        return ["Event object must be a JSON object"]
    errors = []
    key = event.get("routing_key")
    if not isinstance(key, str) or not key:
        errors.append("'routing_key' is missing or blank")
    elif len(key) != ROUTING_KEY_LENGTH:
        errors.append(f"Length of 'routing_key' is incorrect (should be {ROUTING_KEY_LENGTH} characters)")
    elif routing_keys and key not in routing_keys:
        errors.append("'routing_key' does not name an integration")
    action = event.get("event_action")
    if action not in ACTIONS:
        errors.append(f"'event_action' must be one of {', '.join(ACTIONS)}")
    dedup_key = event.get("dedup_key")
    if dedup_key is not None and (not isinstance(dedup_key, str) or not dedup_key):
        errors.append("'dedup_key' must be a non-empty string")
    elif isinstance(dedup_key, str) and len(dedup_key) > MAX_DEDUP_KEY:
        errors.append(f"'dedup_key' is longer than {MAX_DEDUP_KEY} characters")
    elif dedup_key is None and action in ("acknowledge", "resolve"):
        errors.append(f"'dedup_key' is required to {action}")
    if action == "trigger":
        errors += _payload_errors(event.get("payload"))
        for name, required in (("links", "href"), ("images", "src")):
            items = event.get(name, [])
            if not isinstance(items, list) or not all(isinstance(i, dict) and i.get(required) for i in items):
                errors.append(f"'{name}' must be a list of objects, each with '{required}'")
    return errors


def _payload_errors(payload: object) -> list[str]:
    if not isinstance(payload, dict):
        return ["'payload' is required to trigger and must be an object"]
    errors = []
    summary = payload.get("summary")
    if not isinstance(summary, str) or not summary.strip():
        errors.append("'payload.summary' is missing or blank")
    elif len(summary) > MAX_SUMMARY:
        errors.append(f"'payload.summary' is longer than {MAX_SUMMARY} characters")
    source = payload.get("source")
    if not isinstance(source, str) or not source.strip():
        errors.append("'payload.source' is missing or blank")
    if payload.get("severity") not in SEVERITIES:
        errors.append(f"'payload.severity' must be one of {', '.join(SEVERITIES)}")
    timestamp = payload.get("timestamp")
    if timestamp is not None:
        try:
            datetime.fromisoformat(str(timestamp))
        except ValueError:
            errors.append("'payload.timestamp' is not an ISO 8601 timestamp")
    for name in ("component", "group", "class"):
        if name in payload and not isinstance(payload[name], str):
            errors.append(f"'payload.{name}' must be a string")
    if "custom_details" in payload and not isinstance(payload["custom_details"], dict | str):
        errors.append("'payload.custom_details' must be an object")
    return errors


@dataclass
class _Script:
    status: int = 202
    retry_after: int | None = None
    errors: list[str] | None = None
    stall: float = 0.0  # seconds to hold the answer after processing the event


class LocalEventsV2:
    """An Events v2 endpoint on 127.0.0.1 and a free port. With `tls` (the default) it speaks HTTPS with a
    self-signed certificate: give `cafile` to the client. `url` is what RR_PAGING_WEBHOOK_URL should be;
    with `routing_keys`, only those keys are accepted (any 32-character key otherwise)."""

    def __init__(self, *, routing_keys: tuple[str, ...] = (), tls: bool = True, host: str = "127.0.0.1") -> None:
        self.routing_keys = frozenset(routing_keys)
        self.received: list[EventDelivery] = []
        self.incidents: list[Incident] = []  # every incident ever opened, oldest first
        self._scripts: list[_Script] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, 0), self._handler())
        self._server.daemon_threads = True
        self._certdir: Path | None = None
        if tls:
            self._certdir = serve_over_tls(self._server, host, name="events-v2")
        self._thread: threading.Thread | None = None

    @property
    def cafile(self) -> Path | None:
        return self._certdir / "events-v2-cert.pem" if self._certdir else None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{'https' if self._certdir else 'http'}://{host}:{port}{ENQUEUE_PATH}"

    # --- scripting -----------------------------------------------------------------------------
    def respond(
        self, status: int, *, times: int = 1, retry_after: int | None = None, errors: list[str] | None = None
    ) -> None:
        """Answer the next `times` events with `status` without processing them (then normally again). `errors`
        replaces the `errors` list of a 4xx answer (a compatible service may say anything there)."""
        with self._lock:
            self._scripts += [_Script(status, retry_after, errors) for _ in range(times)]

    def stall(self, seconds: float, *, times: int = 1) -> None:
        """Process the next `times` events, then hold each answer for `seconds` (longer than the client waits)."""
        with self._lock:
            self._scripts += [_Script(stall=seconds) for _ in range(times)]

    # --- what happened -------------------------------------------------------------------------
    def events(self) -> list[dict]:
        """Every event received, parsed, in arrival order (whatever was answered)."""
        return [d.json for d in self.received]

    def accepted(self) -> list[dict]:
        """The events this server took (answered 2xx, or processed before a stalled answer)."""
        return [d.json for d in self.received if 200 <= d.answered < 300]

    def incident(self, dedup_key: str) -> Incident | None:
        """The open incident with `dedup_key`, or else the last one that had it."""
        with self._lock:
            return self._find(dedup_key, open_only=True) or self._find(dedup_key, open_only=False)

    def _find(self, dedup_key: str, *, open_only: bool) -> Incident | None:
        for incident in reversed(self.incidents):
            if incident.dedup_key == dedup_key and (incident.open or not open_only):
                return incident
        return None

    # --- life cycle ----------------------------------------------------------------------------
    def start(self) -> LocalEventsV2:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="local-events-v2", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> LocalEventsV2:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- the endpoint --------------------------------------------------------------------------
    def _apply(self, event: dict) -> str:
        """Apply a valid event to the incidents, as PagerDuty does; the dedup_key it concerns."""
        action, key = event["event_action"], event.get("dedup_key") or uuid.uuid4().hex
        with self._lock:
            incident = self._find(key, open_only=True)
            if action == "trigger":
                if incident is None:
                    payload = event["payload"]
                    incident = Incident(
                        key, event["routing_key"], "triggered", payload["summary"], payload["severity"], time.time()
                    )
                    self.incidents.append(incident)
                incident.log.append("trigger")
            elif incident is not None and incident.routing_key == event["routing_key"]:
                incident.log.append(action)
                incident.status = "acknowledged" if action == "acknowledge" else "resolved"
            # an acknowledge or resolve for no open incident (or from another integration) is dropped
        return key

    def _answer(self, body: bytes) -> tuple[_Script, dict]:
        with self._lock:
            script = self._scripts.pop(0) if self._scripts else _Script()
        if script.status != 202:  # scripted: answered without looking at the event
            if script.status == 429:
                return script, {"status": "throttle event", "message": "Requests are arriving too quickly"}
            if 400 <= script.status < 500:
                errors = script.errors if script.errors is not None else ["scripted refusal"]
                return script, {"status": "invalid event", "message": "Event object is invalid", "errors": errors}
            return script, {"status": "error", "message": "Internal server error"}
        try:
            event = json.loads(body) if len(body) <= MAX_BODY else None
            errors = validate_event(event, routing_keys=self.routing_keys) if event is not None else ["too large"]
        except (ValueError, RecursionError):
            event, errors = None, ["Event object is not valid JSON"]
        if errors:
            return _Script(400), {"status": "invalid event", "message": "Event object is invalid", "errors": errors}
        key = self._apply(event)
        return script, {"status": "success", "message": "Event processed", "dedup_key": key}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        pager = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if self.path != ENQUEUE_PATH:
                    script, answer = _Script(404), {"status": "error", "message": "Not found"}
                else:
                    script, answer = pager._answer(body)
                pager.received.append(EventDelivery(dict(self.headers.items()), body, script.status, time.time()))
                if script.stall:
                    time.sleep(script.stall)
                payload = json.dumps(answer).encode()
                try:
                    self.send_response(script.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    if script.retry_after is not None:
                        self.send_header("Retry-After", str(script.retry_after))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:  # the client gave up waiting (a stalled answer)
                    self.close_connection = True

        return Handler
