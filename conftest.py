"""Shared fixtures: named people in two organizations, API clients, a clean Redis cache.

alice  - manager of Acme        bob   - learner at Acme       carol - admin of Acme
mallory - manager of Globex (the other organization)          oscar - platform operator
"""

from contextlib import contextmanager
from pathlib import Path

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from accounts.models import Role, User
from accounts.tests.factories import PASSWORD, OrganizationFactory, TeamFactory, UserFactory


@pytest.fixture(autouse=True)
def _close_turn_connections(request):
    """Replies started by committed messages run on this process's turn threads, which
    keep their database connections; close them after tests that commit."""
    yield
    marker = request.node.get_closest_marker("django_db")
    committed = bool(marker and (marker.kwargs.get("transaction") or marker.args[:1] == (True,)))
    if committed or {"transactional_db", "live_server"} & set(request.fixturenames):
        from training.turns import close_database_connections

        close_database_connections()


@pytest.fixture(autouse=True)
def _clean_cache():
    """Throttles and cached retrievals live in the Redis cache: each test starts with none."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def password():
    return PASSWORD


@pytest.fixture
def acme(db):
    return OrganizationFactory(name="Acme", slug="acme")


@pytest.fixture
def globex(db):
    return OrganizationFactory(name="Globex", slug="globex")


@pytest.fixture
def alice(acme):
    return UserFactory(email="alice@acme.test", organization=acme, role=Role.MANAGER)


@pytest.fixture
def carol(acme):
    return UserFactory(email="carol@acme.test", organization=acme, role=Role.ADMIN)


@pytest.fixture
def bob(acme):
    return UserFactory(email="bob@acme.test", organization=acme, role=Role.LEARNER)


@pytest.fixture
def mallory(globex):
    return UserFactory(email="mallory@globex.test", organization=globex, role=Role.MANAGER)


@pytest.fixture
def oscar(db):
    return User.objects.create_superuser("oscar@platform.test", PASSWORD)


@pytest.fixture
def acme_team(acme, bob):
    team = TeamFactory(organization=acme, name="Field Sales")
    team.members.add(bob)
    return team


@pytest.fixture
def api_client():
    return APIClient()


def token_for(client, user, password=PASSWORD):
    response = client.post(
        "/api/v1/auth/token/", {"email": user.email, "password": password}, format="json"
    )
    assert response.status_code == 200, response.content
    return response.json()


@pytest.fixture
def api_as():
    """api_as(user) -> an APIClient sending that user's JWT access token."""

    def make(user):
        client = APIClient()
        tokens = token_for(client, user)
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
        return client

    return make


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parent / "test-artifacts" / "screenshots"


@pytest.fixture(scope="session")
def _chromium():
    import os

    if not Path(CHROMIUM).exists():
        reason = (
            f"BROWSER TESTS SKIPPED: {CHROMIUM} is missing "
            "(apt-get install -y chromium; .ci/run installs it)"
        )
        if os.environ.get("REQUIRE_BROWSER"):
            pytest.fail(reason.replace("SKIPPED", "REQUIRED but cannot run"))
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop on this thread; the test's own ORM calls
    # (fixtures, assertions) are still synchronous, so Django's guard does not apply.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@contextmanager
def _browser_tab(browser, base_url, request, height=860):
    """A fresh tab that collects console errors and failed responses (`tab.console_errors`)
    and leaves a full-page screenshot named after the test."""
    context = browser.new_context(base_url=base_url, viewport={"width": 1280, "height": height})
    tab = context.new_page()
    errors = []
    tab.on("console", lambda message: message.type == "error" and errors.append(message.text))
    tab.on("response", lambda r: r.status >= 400 and errors.append(f"{r.status} {r.url}"))
    tab.console_errors = errors
    try:
        yield tab
    finally:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(SCREENSHOTS / f"{request.node.name}.png"), full_page=True)
        context.close()


@pytest.fixture
def page(_chromium, live_server, request):
    """A Chromium tab against Django's live test server."""
    with _browser_tab(_chromium, live_server.url, request) as tab:
        yield tab


def database_url_for_processes():
    """DATABASE_URL of the test database, for servers and workers started as processes."""
    from urllib.parse import quote

    from django.db import connection

    database = connection.settings_dict
    host = quote(database["HOST"], safe="")
    return f"postgres://{database['USER']}:@{host}/{database['NAME']}"


def start_daphne(port, env):
    """Daphne serving the app on 127.0.0.1:`port` as a process (output discarded)."""
    import subprocess
    import sys

    return subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
         "avatar_adam.asgi:application"],
        cwd=Path(__file__).resolve().parent, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def wait_for_port(port, seconds):
    import socket
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.2)


@pytest.fixture
def live_stack(transactional_db):
    """The production stack on the test database: Daphne (ASGI) and one Celery worker
    consuming every queue (`make run` starts one per queue). Yields the base URL."""
    import os
    import socket
    import subprocess
    import sys

    from django.conf import settings

    env = dict(os.environ)
    # The stack's stand-in streams like a model (a test may ask for a slower one).
    env["LLM_STAND_IN_TOKEN_DELAY_MS"] = os.environ.get("LIVE_STACK_TOKEN_DELAY_MS", "40")
    env.update(DATABASE_URL=database_url_for_processes(), LOG_LEVEL="WARNING")
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    root = Path(__file__).resolve().parent
    processes = [
        start_daphne(port, env),
        subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "avatar_adam", "worker", "--pool", "solo",
             "-Q", ",".join(settings.TASK_QUEUE_NAMES),
             "--without-heartbeat", "--without-mingle", "--without-gossip"],
            cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ),
    ]  # fmt: skip
    wait_for_port(port, 30)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture
def stack_page(_chromium, live_stack, request):
    """A Chromium tab against the live Daphne + Celery stack."""
    with _browser_tab(_chromium, live_stack, request, height=900) as tab:
        yield tab


@pytest.fixture
def stopped_redis_url(tmp_path):
    """The URL of a Redis that was running and has been stopped (connections are refused):
    for tests of what happens when Redis goes down. The suite's own Redis keeps running."""
    from avatar_adam import embedded

    url = embedded.ensure_redis(tmp_path)
    assert embedded.stop_redis(tmp_path)
    return url
