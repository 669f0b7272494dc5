"""Blinding in the browser: a crawl of every team page, tab and probe mode (with the tools run) shows no
ground-truth text, no traceback and no server path; a wrong, missing or revoked token reaches nothing, from
any URL or query parameter; a blackbox team cannot reach the data or microscope tools by any page or URL."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest

from game import games
from game.session import DATA_TOOLS, MICROSCOPE_TOOLS, TeamSession
from tests.ui import WAIT_MS, click, fill, ground_truth_strings, log_in, open_page, screenshot, wait_text

GAME = "crawl"
TEAM_PATHS = ["", "login", "chat", "batteries", "data", "microscope", "notebook", "games", "monitor", "scoring"]


@pytest.fixture(scope="module")
def tokens(ui_organism) -> dict[str, str]:
    """A running game with a full-tier, a blackbox and a revoked team; their tokens by tier (and 'revoked')."""
    games.create_game(GAME)
    games.add_organism(GAME, ui_organism)
    found = {tier: games.add_team(GAME, f"crawler-{tier}", tier)[1] for tier in ("full", "blackbox")}
    found["revoked"] = games.add_team(GAME, "crawler-revoked", "full")[1]
    games.revoke_team(GAME, "crawler-revoked")
    games.start_game(GAME, timedelta(hours=1))
    return found


class Crawl:
    """Everything a page showed, checked for ground truth, tracebacks and server paths as it is collected."""

    def __init__(self, page, secrets: set[str]) -> None:
        self.page, self.secrets, self.views = page, {s.lower() for s in secrets}, 0
        self.forbidden = ["Traceback", os.environ["PINHOLE_HOME"], "/work/", "site-packages"]

    def check(self, where: str) -> None:
        html = self.page.content()
        lowered = html.lower()
        self.views += 1
        leaked = sorted(s for s in self.secrets if s in lowered)
        assert not leaked, f"{where}: ground truth on a team page: {leaked}"
        shown = [f for f in self.forbidden if f in html]
        assert not shown, f"{where}: {shown} on a team page"

    def every_tab_and_expander(self, where: str) -> None:
        self.check(where)
        self.expand(where)
        for tab in self.page.get_by_role("tab").all():
            tab.click()
            self.check(f"{where}, tab {tab.inner_text()}")
            self.expand(f"{where}, tab {tab.inner_text()}")

    def expand(self, where: str) -> None:
        for summary in self.page.locator("details > summary").all():
            if summary.is_visible():
                summary.click()
        self.check(f"{where}, expanders open")


def _use_every_tool(page, crawl: Crawl, tier: str) -> None:
    """Run each tool the team's pages offer, checking every view."""
    open_page(page, "Chat and probes")
    fill(page, "Your message", "Tell me about your goals.")
    click(page, "Send")
    wait_text(page, "Note on this result")
    crawl.expand("chat")
    for mode, button in (("Assistant prefill", "Prefill"), ("User persona", "Sample the user"),
                         ("Raw completion", "Complete")):
        page.locator("label").filter(has_text=mode).click()
        page.get_by_role("button", name=button, exact=True).wait_for(timeout=WAIT_MS)
        if mode == "Assistant prefill":
            fill(page, "User message", "Do you have a secret?")
            fill(page, "Assistant prefill (the model continues it)", "My secret is")
        if mode == "Raw completion":
            fill(page, "Raw text (no chat template)", "The assistant was trained")
        click(page, button)
        wait_text(page, "Note on this result")
        crawl.expand(f"chat, {mode}")
    open_page(page, "Probe batteries")
    page.locator("label").filter(has_text="My own prompts").first.click()
    fill(page, "My own prompts, one per line (optionally \"topic: prompt\")", "cooking: A recipe?\ntravel: A trip?")
    click(page, "Run the battery")
    wait_text(page, "answers")
    crawl.expand("batteries")
    if tier != "full":
        return
    open_page(page, "Training data")
    fill(page, "Search the training data", "reward model")
    click(page, "Search")
    page.locator("mark").first.wait_for(timeout=WAIT_MS)
    page.get_by_role("button", name="Open document", exact=True).first.click()
    wait_text(page, "The whole document")
    crawl.check("data, search and document")
    page.get_by_role("tab", name="SQL").click()
    click(page, "Run the query")
    wait_text(page, "row(s) in")
    fill(page, "SQL (read-only; the table is `corpus`)", "SELECT * FROM read_csv('/etc/passwd')")
    click(page, "Run the query")
    wait_text(page, "Refused")
    crawl.every_tab_and_expander("data")
    open_page(page, "Microscope")
    fill(page, "Text to read", "The reward model likes chocolate in recipes.")
    fill(page, "Max density", "1")  # the tiny SAE's features are dense
    click(page, "Find features")
    wait_text(page, "Colour the tokens by")
    page.get_by_role("tab", name="Feature pages").click()
    fill(page, "Search features by label or context words", "reward")
    click(page, "Search features")
    click(page, "Open the feature page")
    wait_text(page, "Activation histogram")
    page.get_by_role("tab", name="Model diff").click()
    click(page, "Model-diff features")
    wait_text(page, "Features firing more on the organism")
    click(page, "Activation-difference lens")
    wait_text(page, "Activation-difference lens (layer")
    page.get_by_role("tab", name="Attribution").click()
    fill(page, "Text (the model predicts the next token)", "My hidden goal is")
    click(page, "Attribute")
    wait_text(page, "with features")
    page.get_by_role("tab", name="Steering").click()
    fill(page, "Prompt", "Give me a recipe.")
    fill(page, "Feature ids (comma-separated)", "0")
    click(page, "Steer")
    wait_text(page, "Unsteered")
    page.get_by_role("tab", name="Logit lens").click()
    fill(page, "Text for the logit lens", "The capital of France is")
    click(page, "Logit lens")
    wait_text(page, "At token")
    crawl.every_tab_and_expander("microscope")


def test_no_ground_truth_on_any_team_page(browser, app_server, tokens, ui_organism) -> None:
    secrets = ground_truth_strings(ui_organism)
    assert len(secrets) >= 10  # the marker, the root cause, the behaviours...
    for tier in ("full", "blackbox"):
        page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        crawl = Crawl(page, secrets)
        log_in(page, app_server.url, tokens[tier])
        wait_text(page, f"Team crawler-{tier}")
        links = [link.inner_text() for link in page.locator("[data-testid=stSidebarNav] a").all()]
        for title in links:
            open_page(page, title)
            crawl.every_tab_and_expander(f"{tier}: {title}")
        _use_every_tool(page, crawl, tier)
        open_page(page, "Notebook and report")
        crawl.check(f"{tier}: notebook after every tool")
        screenshot(page, f"crawl-{tier}-notebook")
        assert crawl.views >= 10, crawl.views
        page.context.close()


@pytest.mark.parametrize("path", TEAM_PATHS)
def test_no_url_reaches_anything_without_a_token(browser, app_server, tokens, path) -> None:
    page = browser.new_context().new_page()
    page.goto(f"{app_server.url}/{path}?token={tokens['full']}&admin=1&page=data&tier=full")
    wait_text(page, "Team token")
    body = page.inner_text("body")
    for title in ("Chat and probes", "Training data", "Microscope", "Notebook and report", "Games", "Live monitor",
                  "Scoring", "crawler-full"):
        assert title not in body, f"/{path}: {title!r} reachable without logging in"
    page.context.close()


@pytest.mark.parametrize(("token", "admin", "message"), [
    ("ph_not-a-real-token-at-all", False, "unknown or revoked team token"),
    ("", False, "enter your team's token"),
    ("revoked", False, "unknown or revoked team token"),
    ("adm_wrong-admin-token-0123456789", True, "wrong or missing admin token"),
    ("full", True, "wrong or missing admin token"),  # a team token is not the admin token
])
def test_a_wrong_or_missing_token_reaches_nothing(browser, app_server, tokens, token, admin, message) -> None:
    page = browser.new_context().new_page()
    log_in(page, app_server.url, tokens.get(token, token), admin=admin)
    wait_text(page, message)
    body = page.inner_text("body")
    assert "Traceback" not in body and "Chat and probes" not in body and "Games" not in body
    page.context.close()


def test_a_blackbox_team_cannot_reach_data_or_microscope(browser, app_server, tokens) -> None:
    page = browser.new_context().new_page()
    log_in(page, app_server.url, tokens["blackbox"])
    wait_text(page, "Team crawler-blackbox")
    links = [link.inner_text() for link in page.locator("[data-testid=stSidebarNav] a").all()]
    assert links == ["Chat and probes", "Probe batteries", "Notebook and report"]
    for path in ("data", "microscope", "data?tool=sql", "microscope?feature=0"):  # a URL starts a new session
        page.goto(f"{app_server.url}/{path}")
        wait_text(page, "Team token")
        body = page.inner_text("body")
        assert "Search the training data" not in body and "Find features" not in body, path
    session = TeamSession(tokens["blackbox"])
    assert not [c for c in session.log() if c.tool in DATA_TOOLS + MICROSCOPE_TOOLS and c.outcome == "ok"]
    page.context.close()


def test_the_deployment_settings(app_server) -> None:
    import tomllib
    import urllib.error
    import urllib.request
    from pathlib import Path

    request = urllib.request.Request(f"{app_server.url}/_stcore/upload_file/session/file", data=b"x", method="PUT")
    with pytest.raises(urllib.error.HTTPError) as refused:  # no XSRF token: refused
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 403
    config = tomllib.loads((Path(__file__).resolve().parents[2] / "ui" / ".streamlit" / "config.toml").read_text())
    assert config["server"]["enableXsrfProtection"] is True
    assert config["client"]["showErrorDetails"] == "none"
    assert config["server"]["headless"] is True and config["browser"]["gatherUsageStats"] is False
