"""`GET /`: where things are, until the web console exists (HTML for browsers, JSON for programs)."""

from __future__ import annotations

from html import escape

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from release_requests.access import needs

router = APIRouter()

LINKS = {
    "docs": ("/docs", "interactive API documentation"),
    "openapi": ("/openapi.json", "OpenAPI schema"),
    "api": ("/api/v1", "base path of the API (token in the Authorization header)"),
    "health": ("/healthz", "health check"),
}
NOTE = "This is the release-requests API; there is no web console yet. The `relreq` command uses this API."


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


@router.get("/", include_in_schema=False, openapi_extra=needs("public"))
def home(request: Request) -> Response:
    base = str(request.base_url).rstrip("/")
    if not wants_html(request.headers.get("accept", "")):
        links = {name: {"href": path, "title": title} for name, (path, title) in LINKS.items()}
        return JSONResponse({"service": "release-requests", "console": None, "note": NOTE, "links": links})
    items = "\n".join(
        f'    <li><a href="{escape(path)}"><code>{escape(path)}</code></a>: {escape(title)}</li>'
        for path, title in LINKS.values()
    )
    page = f"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>release-requests</title></head>
<body>
  <h1>release-requests</h1>
  <p>{escape(NOTE)}</p>
  <ul>
{items}
  </ul>
  <p>Base URL: <code>{escape(base)}</code></p>
</body>
</html>
"""
    return HTMLResponse(page)
