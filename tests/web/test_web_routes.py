"""Every page declares its action from the one permission table, and every state change checks the form
token: structural guarantees over all routes of the console, whoever adds the next page."""

from __future__ import annotations

from release_requests.access import RULES
from release_requests.api.reference import the_app
from release_requests.api.reference import web_routes as pages_of
from release_requests.web.session import checked

# the sign-in forms have no session yet: they check their own double-submit token (web/auth_views.py)
SIGN_IN_FORMS = {"/login", "/login/link"}


def web_routes():
    return pages_of(the_app())


def calls_of(dependant) -> set:
    found = {dependant.call}
    for sub in dependant.dependencies:
        found |= calls_of(sub)
    return found


def test_every_page_declares_an_action_of_the_table():
    routes = web_routes()
    assert len(routes) > 5
    for route in routes:
        action = (route.openapi_extra or {}).get("x-action")
        assert action in RULES, (
            f"{sorted(route.methods)} {route.path} declares {action!r}, not an action of access.RULES"
        )


def test_every_state_change_checks_the_form_token():
    for route in web_routes():
        if route.methods & {"POST", "PUT", "PATCH", "DELETE"} and route.path not in SIGN_IN_FORMS:
            assert checked in calls_of(route.dependant), f"{route.path} changes state without the CSRF check"


def test_pages_stay_out_of_the_api_schema():
    schema = the_app().openapi()
    assert not any(path in schema["paths"] for path in ("/login", "/queue", "/my/requests"))
