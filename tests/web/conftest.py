"""The console in tests: the real app on a real port (the session's `api_url`), people signed in through the
real form, and a real Chromium (Debian's, launched by pytest-playwright with `executable_path`)."""

from __future__ import annotations

import re
import shutil
import uuid
from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest
from axe_playwright_python.sync_playwright import Axe

from artifacts.signing import create_signing_key
from release_requests import db
from release_requests.audit.service import Actor
from release_requests.people.models import Person
from release_requests.people.signin import NewPassword, open_session, set_password
from release_requests.pipeline import segments
from release_requests.settings import Settings, get_settings
from release_requests.web.session import COOKIE
from tests.conftest import REPO, Builder, User, World, clone_database, copy_repo
from tests.pipeline.conftest import PipelineWorld
from tests.pipeline.driving import api_for

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if CHROMIUM is None:
        pytest.fail("Debian's chromium is not installed: `make test` installs it (apt-get install chromium)")
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": ["--no-sandbox", "--disable-background-networking", "--disable-dev-shm-usage"],
    }


@pytest.fixture(scope="session")
def base_url(api_url) -> str:
    """pytest-playwright's base URL: `page.goto("/queue")` goes to the test server."""
    return api_url


_PASSWORDS: dict[tuple[str, int], str] = {}


def give_password(world: World, user: User) -> str:
    """The user's password, set once (setting one again would sign out the browsers already signed in)."""
    key = (world.api_url, user.id)
    if key in _PASSWORDS:
        return _PASSWORDS[key]
    password = _PASSWORDS[key] = f"pw-{uuid.uuid4().hex}"
    with db.transaction(world.sessions) as s:
        set_password(
            s, actor=Actor.system("tests"), person=s.get(Person, user.id), password=NewPassword(password=password)
        )
    return password


def email_of(world: World, user: User) -> str:
    with db.transaction(world.sessions) as s:
        return s.get(Person, user.id).email


CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Browserless:
    """A signed-in HTTP client for checks a browser cannot make (a forged form, a raw status code)."""

    client: httpx.Client
    csrf_token: str

    def page(self, path: str) -> httpx.Response:
        return self.client.get(path, headers={"Accept": "text/html"})

    def post(self, path: str, data: dict, *, token: str | None = None) -> httpx.Response:
        return self.client.post(path, data={"csrf_token": self.csrf_token if token is None else token, **data})


def sign_in_http(world: World, user: User) -> Browserless:
    password = give_password(world, user)
    client = httpx.Client(base_url=world.api_url, timeout=30, follow_redirects=False)
    form = client.get("/login")
    token = CSRF_RE.search(form.text).group(1)
    answer = client.post(
        "/login", data={"email": email_of(world, user), "password": password, "csrf_token": token, "next": ""}
    )
    assert answer.status_code == 303, answer.text
    landing = client.get(answer.headers["location"], headers={"Accept": "text/html"})
    return Browserless(client, CSRF_RE.search(landing.text).group(1))


def through_the_form(browser, base_url: str, email: str, password: str, *, start="/login", landing=None, on_form=None):
    """(context, page): a new browser context signed in through the real sign-in form, opened at `start`
    (`on_form(page)` runs on the form first), waiting for `landing` when given."""
    context = browser.new_context(base_url=base_url)
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto(start)
    if on_form:
        on_form(page)
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    if landing:
        page.wait_for_url(f"**{landing}")
    page.wait_for_load_state()
    return context, page


@pytest.fixture
def sign_in(world, browser, base_url):
    """`sign_in(user)` → a Playwright page of a new browser context signed in as `user` through the real form."""
    contexts = []

    def _sign_in(user: User):
        context, page = through_the_form(browser, base_url, email_of(world, user), give_password(world, user))
        contexts.append(context)
        return page

    yield _sign_in
    for context in contexts:
        context.close()


# --------------------------------------------------------------------------------------------------
# The console over a real pipeline world (git signature repository, YARA-X builds, signing key, channels)


@dataclass
class Console:
    w: PipelineWorld
    world: World  # people and sign-in over the pipeline world's database
    staff: dict


@pytest.fixture(scope="module")
def console(pg_server, admin_url, template_db, starter_template, tmp_path_factory, config):
    """One pipeline world (database, signature repository, signing key) and the console served over it."""
    url = clone_database(pg_server, admin_url, template_db)
    data = tmp_path_factory.mktemp("pipeline-console")
    settings = Settings(database_url=url, data_dir=data, config_dir=REPO / "config", sigrepo=data / "sigrepo")
    copy_repo(starter_template, settings.signature_repo)
    create_signing_key(data_dir=data)
    engine = db.make_engine(url, pool_size=4)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RR_SIGREPO", str(settings.signature_repo))  # decisions reverting a fix find the same repository
        get_settings.cache_clear()
        w = PipelineWorld(settings, segments.Segment(db.make_sessionmaker(engine), settings, config), url, config)
        with db.transaction(w.seg.sessions) as s:
            b = Builder(s, config)
            staff = {role: b.person(role) for role in ("triage", "build_engineer", "release_manager")}
            staff["release_manager_2"] = b.person("release_manager")
            staff["analyst"] = b.person("build_engineer")  # writes fixes, so never signs them
        try:
            with api_for(w) as api:
                yield Console(w, World(engine, api), staff)
        finally:
            engine.dispose()
    get_settings.cache_clear()


def web_session(console, person) -> tuple[str, str]:
    """(cookie, form token) of a browser session opened for `person` — as the sign-in form opens one (tested
    in test_sign_in.py), without its password hashing: these tests are about the panel."""
    with db.transaction(console.w.seg.sessions) as s:
        token, row = open_session(s, person=s.get(Person, person.id), lifetime=timedelta(hours=1), via="password")
        return token, row.csrf_token


def over_http(console, person) -> Browserless:
    token, csrf = web_session(console, person)
    client = httpx.Client(base_url=console.world.api_url, timeout=30, cookies={COOKIE: token})
    return Browserless(client, csrf)


@pytest.fixture
def signed_in(console, browser):
    """`signed_in(person)` → a Playwright page of a new browser context with that person's session cookie."""
    contexts = []

    def _sign_in(person):
        context = browser.new_context(base_url=console.world.api_url)
        context.add_cookies([{"name": COOKIE, "value": web_session(console, person)[0], "url": console.world.api_url}])
        contexts.append(context)
        return context.new_page()

    yield _sign_in
    for context in contexts:
        context.close()


def signed_in_by_form(console, browser, person, *, scan=None):
    """(page, context) of `person` signed in through the real sign-in form over the console's world: `/` sends
    the browser to `/login` (scanned with `scan(page, "login")` when given), then to the landing page."""

    def at_the_form(page):
        assert page.url.endswith("/login"), page.url
        if scan:
            scan(page, "login")

    password = give_password(console.world, person)
    context, page = through_the_form(
        browser, console.world.api_url, person.email, password, start="/", on_form=at_the_form
    )
    return page, context


def assert_accessible(page, *, within: str | None = None) -> None:
    """axe-core (offline, inside the page) finds nothing serious or critical on the page or in `within`."""
    found = [
        (v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
        for v in Axe().run(page, context=within).response["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert not found, found
