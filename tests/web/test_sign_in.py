"""Signing in and out of the console: the contract pages, passwords, links, sessions, CSRF, throttling."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import delete

from release_requests import db
from release_requests.people.models import SignInFailure
from tests.web.conftest import CSRF_RE, email_of, give_password, sign_in_http


def test_root_without_a_session_goes_to_the_sign_in_page(page):
    page.goto("/")
    assert page.url.endswith("/login")
    page.get_by_label("E-mail").wait_for()
    page.get_by_label("Password").wait_for()
    page.get_by_role("button", name="Sign in").wait_for()


def test_programs_still_get_the_api_index_at_the_root(world):
    with world.client() as c:
        answer = c.get("/", headers={"Accept": "application/json"})
    assert answer.status_code == 200 and answer.json()["console"] == "/login"


def test_staff_land_on_the_queue_and_customers_on_their_requests(world, sign_in):
    customer_id = world.customer()
    staff = sign_in(world.user("triage"))
    assert staff.get_by_role("heading", level=1).inner_text() == "Queue"
    customer = sign_in(world.user("customer", customer_id))
    assert customer.get_by_role("heading", level=1).inner_text() == "My requests"
    customer.get_by_role("link", name="New request").first.wait_for()


def test_a_wrong_password_is_refused_without_saying_which_part_was_wrong(world, page, forgets_failed_sign_ins):
    user = world.user("tam")
    give_password(world, user)
    page.goto("/login")
    page.get_by_label("E-mail").fill(email_of(world, user))
    page.get_by_label("Password").fill("not the password at all")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").inner_text() == "Wrong e-mail or password."
    assert page.url.endswith("/login")


@pytest.fixture
def forgets_failed_sign_ins(world):
    """The failures a test makes count against 127.0.0.1 too: gone afterwards, so later sign-ins are not refused."""
    yield
    with db.transaction(world.sessions) as s:
        s.execute(delete(SignInFailure))


def test_guessing_is_throttled_per_e_mail(world, forgets_failed_sign_ins):
    user = world.user("tam")
    give_password(world, user)
    with httpx.Client(base_url=world.api_url) as c:
        token = CSRF_RE.search(c.get("/login").text).group(1)
        statuses = [
            c.post(
                "/login", data={"email": email_of(world, user), "password": f"guess-{i}", "csrf_token": token}
            ).status_code
            for i in range(6)
        ]
    assert statuses == [401] * 5 + [429]


def test_the_session_cookie_is_http_only_and_same_site(world):
    user = world.user("tam")
    password = give_password(world, user)
    with httpx.Client(base_url=world.api_url) as c:
        token = CSRF_RE.search(c.get("/login").text).group(1)
        answer = c.post("/login", data={"email": email_of(world, user), "password": password, "csrf_token": token})
    cookie = answer.headers["set-cookie"]
    assert "rr_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie


def test_signing_out_ends_the_session(world):
    me = sign_in_http(world, world.user("triage"))
    assert me.page("/queue").status_code == 200
    assert me.post("/logout", {}).status_code == 303
    assert me.page("/queue").status_code == 303


def test_a_form_without_the_session_token_is_refused(world):
    me = sign_in_http(world, world.user("triage"))
    answer = me.post("/logout", {}, token="forged")
    assert answer.status_code == 403
    assert "did not come from this site" in answer.text
    assert me.page("/queue").status_code == 200  # still signed in


def test_pages_carry_a_strict_content_security_policy(world):
    me = sign_in_http(world, world.user("triage"))
    policy = me.page("/queue").headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy


def test_a_new_password_signs_out_the_browsers_the_old_one_signed_in(world):
    from release_requests.audit.service import Actor
    from release_requests.people.models import Person
    from release_requests.people.signin import NewPassword, set_password

    user = world.user("tam")
    me = sign_in_http(world, user)
    assert me.page("/queue").status_code == 200
    with db.transaction(world.sessions) as s:
        new = NewPassword(password="a completely new passphrase")
        set_password(s, actor=Actor.system("tests"), person=s.get(Person, user.id), password=new)
    assert me.page("/queue").status_code == 303


def test_a_form_larger_than_its_files_may_be_is_refused_before_it_is_read(world, config):
    import socket
    from urllib.parse import urlsplit

    me = sign_in_http(world, world.user("customer", world.customer()))
    cookie = "; ".join(f"{name}={value}" for name, value in me.client.cookies.items())
    too_much = 4 * config.intake.samples.max_bytes + 2 * 1024 * 1024
    url = urlsplit(world.api_url)
    with socket.create_connection((url.hostname, url.port), timeout=10) as raw:
        # only the head is sent: the server must answer from the declared length, before reading any body
        raw.sendall(
            (
                f"POST /requests/new HTTP/1.1\r\nHost: {url.netloc}\r\nCookie: {cookie}\r\n"
                f"Content-Type: multipart/form-data; boundary=x\r\nContent-Length: {too_much}\r\n\r\n"
            ).encode()
        )
        answer = ""
        while "</html>" not in answer and (chunk := raw.recv(65536)):
            answer += chunk.decode(errors="replace")
    assert answer.startswith("HTTP/1.1 413") and "at most 100 MiB of files" in answer


def test_signing_in_ends_the_session_the_browser_held_before(world):
    first = sign_in_http(world, world.user("triage"))
    held = first.client.cookies.get("rr_session")
    second = world.user("tam")
    token = CSRF_RE.search(first.client.get("/login").text).group(1)
    answer = first.client.post(
        "/login", data={"email": email_of(world, second), "password": give_password(world, second), "csrf_token": token}
    )
    assert answer.status_code == 303
    with httpx.Client(base_url=world.api_url, cookies={"rr_session": held}) as old:
        assert old.get("/queue", headers={"Accept": "text/html"}).status_code == 303  # the first session ended
