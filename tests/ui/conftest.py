"""Fixtures of the browser tests: the game organism in the session's workspace, an admin token, one real
Streamlit server per test module, and the system Chromium."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.ui import ARTIFACTS, CHROMIUM, AppServer, game_organism, launch_browser


@pytest.fixture(scope="session")
def ui_organism(tiny_organism: Path, session_workspace: Path) -> Path:
    """The tiny organism, copied into the workspace with a sealed ground truth its card commits to."""
    return game_organism(tiny_organism, session_workspace)


@pytest.fixture(scope="session")
def admin_token(session_workspace: Path) -> str:
    """The game master's admin token for this workspace."""
    from game.admin import new_admin_token

    return new_admin_token()


@pytest.fixture(scope="module")
def app_server(request, ui_organism: Path, admin_token: str):
    """A real `streamlit run` of the app on a free port, on the session's workspace."""
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (apt-get install chromium)")
    server = AppServer(ARTIFACTS / f"{request.module.__name__.rsplit('.', 1)[-1]}-server.log",
                       env={"PINHOLE_HOME": os.environ["PINHOLE_HOME"]})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser(app_server: AppServer):
    """The system Chromium under Playwright (one per module)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_browser(playwright)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    """A fresh browser context (its own cookies and Streamlit session) and page."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    yield page
    context.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On a failure, save a screenshot of every open page (tests/ui/artifacts/FAILED-<test>-<n>.png)."""
    outcome = yield
    report = outcome.get_result()
    browser = item.funcargs.get("browser")
    if report.when == "call" and report.failed and browser is not None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        pages = [p for context in browser.contexts for p in context.pages]
        for n, open_page in enumerate(pages):
            try:
                open_page.screenshot(path=str(ARTIFACTS / f"FAILED-{item.name}-{n}.png"), full_page=True)
            except Exception as err:  # a page that cannot be captured is reported, not fatal
                print(f"no screenshot of page {n}: {err}")
