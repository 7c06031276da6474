"""The web console (staff) and the customer portal: server-rendered pages on the API's port, calling the same
services as the API, so the same permission table decides (docs/web.md)."""

WEB_TAG = "web"  # routes of pages, not of the API: listed in docs/web.md, not in docs/api.md
