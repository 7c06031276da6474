"""`GET /` for programs: where the API is (browsers are sent to the web console instead)."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse

LINKS = {
    "docs": ("/docs", "interactive API documentation"),
    "openapi": ("/openapi.json", "OpenAPI schema"),
    "api": ("/api/v1", "base path of the API (token in the Authorization header)"),
    "health": ("/healthz", "health check"),
}
NOTE = "This is the release-requests API (the `relreq` command uses it); people sign in to the web console at /login."


def _quality(accept: str, media_type: str) -> float:
    """The q-value `accept` gives `media_type` (exact type, `type/*` or `*/*`), 0 when not acceptable."""
    best, best_specificity = 0.0, -1
    kind = media_type.split("/")[0]
    for part in accept.split(","):
        name, *params = (p.strip() for p in part.split(";"))
        specificity = {media_type: 2, f"{kind}/*": 1, "*/*": 0}.get(name.lower())
        if specificity is None or specificity < best_specificity:
            continue
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        best, best_specificity = q, specificity
    return best


def wants_html(accept: str) -> bool:
    """HTML only when the client prefers it to JSON (browsers); curl's `*/*` and programs get JSON."""
    html, as_json = _quality(accept, "text/html"), _quality(accept, "application/json")
    return html > 0 and html > as_json


def api_index(request: Request) -> JSONResponse:
    """`GET /` for programs (browsers get the console: release_requests.web)."""
    links = {name: {"href": path, "title": title} for name, (path, title) in LINKS.items()}
    return JSONResponse({"service": "release-requests", "console": "/login", "note": NOTE, "links": links})
