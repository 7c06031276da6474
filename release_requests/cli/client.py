"""The CLI's HTTP client: every working command goes through the API, like any other client would."""

from __future__ import annotations

from typing import Any

import httpx

from release_requests.cli.output import CliError
from release_requests.settings import get_settings


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:200]}"
    if isinstance(body, dict) and "message" in body:
        return f"{body['message']} (HTTP {response.status_code} {body.get('error', '')})".replace(" )", ")")
    return f"HTTP {response.status_code}: {body}"


def api_call(method: str, path: str, *, raw: bool = False, **kwargs: Any) -> Any:
    """Call the API and return the decoded JSON body (or the response, `raw`); failures become CliError."""
    settings = get_settings()
    if not settings.token:
        raise CliError("RR_TOKEN is not set: export the token printed by `relreq users add`")
    headers = {"Authorization": f"Bearer {settings.token}"}
    try:
        with httpx.Client(base_url=settings.api_url, headers=headers, timeout=60) as client:
            response = client.request(method, path, **kwargs)
    except httpx.TransportError as exc:
        raise CliError(f"cannot reach the API at {settings.api_url} ({exc}); is `relreq serve` running?") from None
    if response.is_error:
        raise CliError(_message(response))
    if raw:
        return response
    return response.json() if response.content else None
