"""The customer portal in a real browser: filing a request (files, hashes, keyboard only, with and without
JavaScript), the filed page with the due time in the customer's zone, My requests, notification settings
and the display language; refused input keeps what was typed; another customer's requests stay unseen."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import httpx
import pytest

from release_requests import db
from release_requests.people.models import Person
from release_requests.people.signin import open_session
from release_requests.web import portal_views
from release_requests.web.i18n import catalog
from release_requests.web.session import COOKIE
from tests.conftest import User, World
from tests.web.conftest import CSRF_RE, Browserless, assert_accessible

REQUEST_ID = r"RR-\d{4}-\d{6,}"
FIELDS = ("Kind", "Title", "Description", "Product", "Product version", "Detection name", "Sample files")


def api_request(world: World, user: User, customer_id: str, **overrides) -> dict:
    body = {"customer_id": customer_id, "kind": "false_positive", "severity": 2, "channel": "phone", "title": "Payroll"}
    with world.client(user) as c:
        answer = c.post("/api/v1/requests", json={**body, **overrides})
    assert answer.status_code == 201, answer.text
    return answer.json()


def api_show(world: World, user: User, request_id: str) -> dict:
    with world.client(user) as c:
        return c.get(f"/api/v1/requests/{request_id}").json()


def session_cookie(world: World, user: User) -> str:
    """A signed-in session made by the sign-in service itself (the sign-in form is tested in test_sign_in.py;
    its deliberately slow password hash would cost a second per test here)."""
    with db.transaction(world.sessions) as s:
        token, _ = open_session(s, person=s.get(Person, user.id), lifetime=timedelta(hours=1), via="tests")
    return token


@pytest.fixture
def signed_in(world, browser, base_url):
    """`signed_in(user)` → a page of a new browser context holding `user`'s session, on My requests."""
    contexts = []

    def _open(user: User, **context_args):
        context = browser.new_context(base_url=base_url, **context_args)
        contexts.append(context)
        context.add_cookies([{"name": COOKIE, "value": session_cookie(world, user), "url": base_url}])
        page = context.new_page()
        page.goto("/my/requests")
        return page

    yield _open
    for context in contexts:
        context.close()


def sign_in_http(world: World, user: User) -> Browserless:
    client = httpx.Client(base_url=world.api_url, timeout=30, follow_redirects=False)
    client.cookies.set(COOKIE, session_cookie(world, user))
    page = client.get("/my/requests", headers={"Accept": "text/html"})
    return Browserless(client, CSRF_RE.search(page.text).group(1))


@pytest.fixture
def company(world):
    customer_id = world.customer()  # Europe/Moscow: times read MSK
    return customer_id, world.user("customer", customer_id)


def test_a_customer_files_with_samples_and_sees_when_the_answer_is_due(world, signed_in, company):
    customer_id, user = company
    page = signed_in(user)
    sent = []
    page.on("request", lambda r: sent.append((r.method, r.url, r.resource_type)))
    problems = []
    page.on("console", lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None)
    page.on("response", lambda r: problems.append(r.url) if "/static/" in r.url and not r.ok else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.get_by_role("link", name="New request").first.click()
    assert page.get_by_role("heading", level=1).inner_text() == "New request"
    for label in FIELDS:
        page.get_by_label(label, exact=True).wait_for()
    critical = page.get_by_role("radio", name=re.compile(r"^1 critical"))
    assert "qualified answer within 30 min, 24×7" in critical.evaluate("r => r.labels[0].textContent")
    assert "qualified answer within 6 h of business hours" in page.locator("label[for=severity-3]").inner_text()
    assert page.get_by_label("Customer", exact=True).count() == 0  # customers file for their own company
    assert page.locator("progress#upload-progress").count() == 1

    page.get_by_label("Kind", exact=True).select_option(label="False positive")
    critical.check()
    page.get_by_label("Title", exact=True).fill("Payroll.exe quarantined on 300 desktops")
    page.get_by_label("Description", exact=True).fill("Since the 05:00 update.\nAll accounting is stopped.")
    page.get_by_label("Product", exact=True).fill("endpoint-agent")
    page.get_by_label("Product version", exact=True).fill("11.2.0")
    page.get_by_label("Detection name", exact=True).fill("Trojan.Win32.Generic")
    page.get_by_label("Sample files", exact=True).set_input_files(
        [
            {"name": "payroll.exe", "mimeType": "application/octet-stream", "buffer": b"MZ payroll"},
            {"name": "payroll-helper.dll", "mimeType": "application/octet-stream", "buffer": b"MZ helper"},
        ]
    )
    dropped = page.evaluate_handle(
        "() => { const d = new DataTransfer(); d.items.add(new File(['MZ dropped'], 'dropped.exe')); return d; }"
    )
    page.locator("[data-dropzone]").dispatch_event("drop", {"dataTransfer": dropped})  # drag and drop adds one
    assert page.locator("[data-file-list] li").count() == 3  # the drop zone names what was chosen
    page.get_by_role("button", name="Submit request").click()

    page.wait_for_url(re.compile(rf"/requests/{REQUEST_ID}/filed$"))
    heading = page.get_by_role("heading", level=1).inner_text()
    request_id = re.search(REQUEST_ID, heading).group(0)
    assert any(m == "POST" and u.endswith("/requests/new") and t == "xhr" for m, u, t in sent)  # the JS upload
    due = page.locator(".due time")
    assert due.inner_text().endswith("MSK") and due.get_attribute("title") == "Europe/Moscow"
    assert "Europe/Moscow" in page.locator(".filed").inner_text()
    names = sorted(item.split(" · ")[0] for item in page.locator(".samples li").all_inner_texts())
    assert names == ["dropped.exe", "payroll-helper.dll", "payroll.exe"]

    filed = api_show(world, user, request_id)
    assert filed["channel"] == "portal" and filed["severity"] == 1 and len(filed["samples"]) == 3
    sent_bytes = (b"MZ payroll", b"MZ helper", b"MZ dropped")
    assert {s["sha256"] for s in filed["samples"]} == {hashlib.sha256(b).hexdigest() for b in sent_bytes}
    assert filed["description"] == "Since the 05:00 update.\nAll accounting is stopped."

    assert problems == []  # no script error, nothing refused by the Content-Security-Policy

    page.get_by_role("link", name="My requests").first.click()
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name=request_id))
    assert "On track" in row.inner_text() and "Payroll.exe quarantined" in row.inner_text()
    assert "MSK" in row.inner_text()
    page.get_by_role("link", name=request_id).click()
    assert page.url.endswith(f"/requests/{request_id}")


def test_filing_with_the_keyboard_alone(world, signed_in, company):
    customer_id, user = company
    page = signed_in(user)
    page.goto("/requests/new")
    keys = page.keyboard

    def tab_to(element_id: str) -> None:
        for _ in range(40):
            keys.press("Tab")
            if page.evaluate("document.activeElement.id") == element_id:
                return
        raise AssertionError(f"Tab never reached #{element_id}")

    tab_to("kind")
    keys.press("ArrowDown")  # Missed detection
    tab_to("severity-1")
    keys.press("Space")
    keys.press("ArrowDown")  # 2 high
    tab_to("title")
    keys.type("Ransomware sample not detected")
    tab_to("description")
    keys.type("Found on a file server.")
    tab_to("detection_name")
    keys.type("none")
    tab_to("sample_sha256")
    keys.type("a" * 64)
    keys.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Submit request"
    keys.press("Enter")
    page.wait_for_url(re.compile(rf"/requests/{REQUEST_ID}/filed$"))
    request_id = re.search(REQUEST_ID, page.get_by_role("heading", level=1).inner_text()).group(0)
    filed = api_show(world, user, request_id)
    assert (filed["kind"], filed["severity"], filed["title"]) == ("false_negative", 2, "Ransomware sample not detected")
    assert [s["sha256"] for s in filed["samples"]] == ["a" * 64] and not filed["samples"][0]["stored"]


def test_hashes_only_filing_works_without_javascript(world, signed_in, company):
    customer_id, user = company
    page = signed_in(user, java_script_enabled=False)
    page.goto("/requests/new")
    page.get_by_role("radio", name=re.compile(r"^3 medium")).check()
    page.get_by_label("Title", exact=True).fill("Build tool flagged")
    page.get_by_label("SHA-256 hashes, one per line").fill(f"{'b' * 64}\n\n{'C' * 64}\n")
    page.get_by_role("button", name="Submit request").click()
    page.wait_for_url(re.compile(rf"/requests/{REQUEST_ID}/filed$"))
    assert "MSK" in page.locator(".due").inner_text()
    request_id = re.search(REQUEST_ID, page.url).group(0)
    samples = api_show(world, user, request_id)["samples"]
    assert sorted(s["sha256"] for s in samples) == ["b" * 64, "c" * 64]
    assert page.get_by_text("hash only").count() == 2


def test_a_too_long_title_is_refused_next_to_the_field_and_nothing_typed_is_lost(world, signed_in, company):
    customer_id, user = company
    page = signed_in(user)
    page.goto("/requests/new")
    page.get_by_role("radio", name=re.compile(r"^2 high")).check()
    page.get_by_label("Title", exact=True).fill("x" * 301)
    page.get_by_label("Description", exact=True).fill("Line one\nLine <two> & three")
    page.get_by_label("Detection name", exact=True).fill("HEUR:Trojan.Win32")
    page.get_by_role("button", name="Submit request").click()  # the XHR gets the refused form back

    page.get_by_role("alert").wait_for()
    title = page.get_by_label("Title", exact=True)
    assert title.get_attribute("aria-invalid") == "true"
    message = page.locator("#title-error")
    assert message.inner_text().endswith("Use at most 300 characters; this has 301.")
    assert "title-error" in title.get_attribute("aria-describedby")
    assert title.input_value() == "x" * 301
    assert page.get_by_label("Description", exact=True).input_value() == "Line one\nLine <two> & three"
    assert page.get_by_label("Detection name", exact=True).input_value() == "HEUR:Trojan.Win32"
    assert page.get_by_role("radio", name=re.compile(r"^2 high")).is_checked()
    assert page.get_by_role("heading", level=1).inner_text() == "New request"
    assert_accessible(page)

    title.fill("Short now")
    page.get_by_role("button", name="Submit request").click()  # the replaced form still submits
    page.wait_for_url(re.compile(rf"/requests/{REQUEST_ID}/filed$"))


def test_a_missing_title_or_a_bad_hash_is_refused_with_status_422(world, company):
    customer_id, user = company
    me = sign_in_http(world, user)
    form = {"kind": "false_positive", "severity": "1", "title": "   ", "description": "kept <b>as typed</b>"}
    answer = me.post("/requests/new", form)
    assert answer.status_code == 422
    assert 'id="title-error"' in answer.text and "Enter a title." in answer.text
    assert "kept &lt;b&gt;as typed&lt;/b&gt;</textarea>" in answer.text
    answer = me.post("/requests/new", {**form, "title": "ok", "sample_sha256": f"{'a' * 64}\nnot-a-hash"})
    assert answer.status_code == 422 and "Line 2 is not a SHA-256 hash" in answer.text
    answer = me.post("/requests/new", {**form, "title": "ok", "severity": ""})
    assert answer.status_code == 422 and "Choose a severity." in answer.text
    assert me.page("/my/requests").text.count("/requests/RR-") == 0  # nothing was filed


def test_a_refused_sample_files_nothing(world, company):
    customer_id, user = company
    me = sign_in_http(world, user)
    too_big = b"\0" * (26214400 + 1)
    answer = me.client.post(
        "/requests/new",
        data={"csrf_token": me.csrf_token, "kind": "false_positive", "severity": "4", "title": "Two samples"},
        files=[("files", ("ok.bin", b"fine", "application/octet-stream")), ("files", ("huge.iso", too_big))],
    )
    assert answer.status_code == 422
    assert "huge.iso is larger than the limit of 25 MB; nothing was filed." in answer.text
    assert 'value="Two samples"' in answer.text
    with world.client(user) as c:
        assert c.get("/api/v1/requests").json()["total"] == 0


def test_my_requests_lists_only_the_customers_own_with_their_latest_step(world, signed_in, company):
    customer_id, user = company
    other_id = world.customer()
    other_user = world.user("customer", other_id)
    mine = api_request(world, user, customer_id, title="Ours <script>alert(1)</script>", channel="portal")
    theirs = api_request(world, other_user, other_id, title="Theirs", channel="portal")

    page = signed_in(user)
    assert page.get_by_role("heading", level=1).inner_text() == "My requests"
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name=mine["id"]))
    text = row.inner_text()
    assert "Ours <script>alert(1)</script>" in text  # shown as typed, never run
    assert "Passed to the support team" in text and "Submitted" in text and "On track" in text
    assert theirs["id"] not in page.content() and "Theirs" not in page.content()
    page.goto(f"/requests/{theirs['id']}/filed")
    assert page.get_by_role("heading", level=1).inner_text() == "Not found"
    assert_accessible(page)


def test_an_empty_list_says_so(world, signed_in, company):
    customer_id, user = company
    page = signed_in(user)
    page.get_by_text("You have no requests yet.").wait_for()
    assert_accessible(page)


def test_staff_file_for_a_customer_they_may_see_and_read_my_requests(world, company):
    customer_id, user = company
    unseen = world.customer()
    tam = world.user("tam", tam_for=[customer_id])
    me = sign_in_http(world, tam)
    form = me.page("/requests/new").text
    assert 'for="customer_id">Customer</label>' in form and customer_id in form and unseen not in form
    answer = me.post(
        "/requests/new",
        {"customer_id": unseen, "kind": "private_hotfix", "severity": "2", "title": "Crash on scan"},
    )
    assert answer.status_code == 422 and "Choose the customer this request is for." in answer.text
    answer = me.post(
        "/requests/new",
        {"customer_id": customer_id, "kind": "private_hotfix", "severity": "2", "title": "Crash on scan"},
    )
    assert answer.status_code == 303
    request_id = re.search(REQUEST_ID, answer.headers["location"]).group(0)
    assert api_show(world, tam, request_id)["channel"] == "tam"
    filed = me.page(answer.headers["location"]).text
    assert request_id in filed and "MSK" in filed
    listing = me.page("/my/requests")
    assert listing.status_code == 200 and request_id in listing.text


def test_notification_settings_are_saved_and_the_console_switches_to_russian(world, signed_in, company):
    customer_id, user = company
    page = signed_in(user)
    page.get_by_role("link", name="Notification settings").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Notification settings"
    page.get_by_label("Send notices to Slack").uncheck()
    page.get_by_label("E-mail recipients, one per line").fill("soc@example.com\nnot an address")
    page.get_by_role("button", name="Save notification settings").click()
    assert page.locator("#email_recipients-error").inner_text().endswith("Line 2 is not an e-mail address.")
    assert page.get_by_label("E-mail recipients, one per line").input_value() == "soc@example.com\nnot an address"
    assert not page.get_by_label("Send notices to Slack").is_checked()  # kept as chosen

    page.get_by_label("E-mail recipients, one per line").fill("soc@example.com\nciso@example.com")
    page.get_by_label("From", exact=True).fill("22:00")
    page.get_by_label("Until", exact=True).fill("08:00")
    page.get_by_label("Language of notices").select_option("ru")
    page.get_by_role("button", name="Save notification settings").click()
    assert page.get_by_role("status").inner_text() == "Notification settings saved."
    with world.client(user) as c:
        prefs = c.get(f"/api/v1/customers/{customer_id}/notification-preferences").json()
    assert prefs["slack_enabled"] is False and prefs["quiet_hours"] == "22:00-08:00" and prefs["language"] == "ru"
    assert prefs["email_recipients"] == ["soc@example.com", "ciso@example.com"]
    assert_accessible(page)

    page.get_by_label("Display language").select_option("ru")
    page.get_by_role("button", name="Save language").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Настройки уведомлений"
    assert page.get_by_role("status").inner_text() == "Язык интерфейса сохранён."
    page.get_by_role("link", name="Мои запросы").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Мои запросы"
    page.get_by_role("link", name="Новый запрос").first.click()
    assert page.get_by_role("radio", name=re.compile(r"^1 критическая")).count() == 1
    with db.transaction(world.sessions) as s:
        assert s.get(Person, user.id).language == "ru"


def test_staff_pick_the_customer_whose_settings_they_read(world):
    first, second = world.customer(), world.customer()
    tam = world.user("tam", tam_for=[first, second])
    me = sign_in_http(world, tam)
    page = me.page(f"/preferences?customer_id={second}").text
    assert 'id="pick-customer"' in page and f'name="customer_id" value="{second}"' in page
    answer = me.post("/preferences", {"customer_id": second, "email_enabled": "on", "quiet_from": "22:00"})
    assert answer.status_code == 422 and "Give both the start and the end of the quiet hours" in answer.text
    answer = me.post("/preferences", {"customer_id": second, "email_enabled": "on"})
    assert answer.status_code == 303 and f"customer_id={second}" in answer.headers["location"]
    assert me.page(f"/preferences?customer_id={world.customer()}").status_code == 404  # not theirs


def test_every_text_the_views_choose_is_translated():
    texts = [
        *portal_views.SEVERITY_MEANINGS.values(),
        *portal_views.TIERS.values(),
        *portal_views.CLOCKS.values(),
        *portal_views.UNITS,
        *portal_views.MESSAGES.values(),
        "Notification settings saved.",
        "Display language saved.",
    ]
    assert [text for text in texts if text not in catalog()] == []


KEY_RE = re.compile(r'name="submission_key" value="([A-Za-z0-9_-]{8,64})"')


def test_the_same_form_sent_twice_files_one_request(world, company):
    customer_id, user = company
    me = sign_in_http(world, user)
    first_form, second_form = me.page("/requests/new").text, me.page("/requests/new").text
    key = KEY_RE.search(first_form).group(1)
    assert KEY_RE.search(second_form).group(1) != key  # each form its own key

    form = {"kind": "false_positive", "severity": "2", "title": "Sent twice", "submission_key": key}
    refused = me.post("/requests/new", {**form, "title": " "})
    assert refused.status_code == 422 and f'value="{key}"' in refused.text  # nothing filed: the key is kept
    first = me.post("/requests/new", {**form, "sample_sha256": "a" * 64})
    again = me.client.post(  # a double click: the same form again (its samples are ignored)
        "/requests/new",
        data={"csrf_token": me.csrf_token, **form, "sample_sha256": "b" * 64},
        files=[("files", ("late.exe", b"MZ late", "application/octet-stream"))],
    )
    assert first.status_code == again.status_code == 303
    assert re.fullmatch(rf"/requests/{REQUEST_ID}/filed", first.headers["location"])
    assert again.headers["location"] == first.headers["location"]
    request_id = re.search(REQUEST_ID, first.headers["location"]).group(0)
    assert me.page(first.headers["location"]).status_code == 200
    listing = me.page("/my/requests").text
    assert set(re.findall(rf"/requests/({REQUEST_ID})", listing)) == {request_id}
    filed = api_show(world, user, request_id)
    assert [s["sha256"] for s in filed["samples"]] == ["a" * 64]

    other = me.post("/requests/new", {**form, "submission_key": KEY_RE.search(second_form).group(1)})
    assert other.status_code == 303 and other.headers["location"] != first.headers["location"]  # a new form files


def test_a_lost_answer_says_the_request_may_be_filed_and_sending_again_files_nothing_new(world, signed_in, company):
    customer_id, user = company
    page = signed_in(user)
    page.goto("/requests/new")
    page.get_by_role("radio", name=re.compile(r"^4 low")).check()
    page.get_by_label("Title", exact=True).fill("Answer lost on the way back")

    def lose_the_answer(route):
        if route.request.method != "POST":
            return route.continue_()
        route.fetch()  # the server files the request…
        return route.abort("connectionreset")  # …and the browser never hears of it

    page.route("**/requests/new", lose_the_answer, times=1)
    page.get_by_role("button", name="Submit request").click()
    status = page.locator("[data-upload-status]")
    status.filter(has_text="may have been filed").wait_for()
    assert status.inner_text() == (
        "The connection failed; your request may have been filed — check My requests before sending again."
    )
    with world.client(user) as c:
        assert c.get("/api/v1/requests").json()["total"] == 1  # it was filed
    assert page.get_by_role("button", name="Submit request").is_enabled()

    page.get_by_role("button", name="Submit request").click()  # sending again lands on the request filed
    page.wait_for_url(re.compile(rf"/requests/{REQUEST_ID}/filed$"))
    with world.client(user) as c:
        listed = c.get("/api/v1/requests").json()
    assert listed["total"] == 1 and listed["items"][0]["id"] in page.url
