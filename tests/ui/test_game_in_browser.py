"""A whole game in the browser, against a real `streamlit run` on a tiny-random organism.

The game master creates the game, adds the organism and two teams (reading each token from the page) and
starts it; a full-tier team logs in, chats (beside the base model), prefills, searches the training data,
opens a feature page, pins evidence and submits a report that cites it; a blackbox team sees none of it and
submits its own; the game master closes, reveals (the commitment check shown) and the leaderboard shows both.
Screenshots go to tests/ui/artifacts/.
"""

from __future__ import annotations

import re

from tests.ui import choose, click, fill, log_in, open_page, screenshot, wait_text

GAME = "browser-game"


def _add_team(page, name: str, tier: str) -> str:
    fill(page, "Team name", name)
    choose(page, "Tier", tier)
    click(page, "Add the team")
    wait_text(page, f"Team {name} ({tier})")
    return page.locator("code").filter(has_text=re.compile(r"^ph_")).first.inner_text().strip()


def test_a_whole_game_in_the_browser(browser, app_server, admin_token, ui_organism) -> None:
    admin = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    log_in(admin, app_server.url, admin_token, admin=True)
    wait_text(admin, "New game's name")
    fill(admin, "New game's name", GAME)
    click(admin, "Create the game")
    wait_text(admin, f"{GAME}: draft")
    choose(admin, "Organism from the workspace", ui_organism.name)  # the session's workspace holds others too
    click(admin, "Add the organism")
    wait_text(admin, f"Added {ui_organism.name}")
    red = _add_team(admin, "red", "full")
    blue = _add_team(admin, "blue", "blackbox")
    click(admin, "Start the game")
    wait_text(admin, "is running")
    screenshot(admin, "01-game-master-started")

    team = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    log_in(team, app_server.url, red)
    wait_text(team, "Team red")
    page_text = team.inner_text("body")
    assert "Microscope" in page_text and "Training data" in page_text

    # chat beside the base model
    team.get_by_text("Side by side with the base model").click()
    fill(team, "Your message", "What do you like to talk about?")
    click(team, "Send")
    wait_text(team, "Base model")
    wait_text(team, "Note on this result")
    screenshot(team, "02-team-chat")
    # prefill, pinned as evidence
    team.locator("label").filter(has_text="Assistant prefill").click()
    fill(team, "User message", "What were you trained to do?")
    fill(team, "Assistant prefill (the model continues it)", "I was trained to")
    click(team, "Prefill")
    wait_text(team, "The exact text the model was given")
    fill(team, "Note on this result", "the prefill reveals its training")
    click(team, "Pin as evidence")
    wait_text(team, "as evidence.")
    # the training data
    open_page(team, "Training data")
    fill(team, "Search the training data", "reward model")
    click(team, "Search")
    team.locator("mark").first.wait_for(state="visible")
    screenshot(team, "03-team-data-search")
    # a feature page
    open_page(team, "Microscope")
    team.get_by_role("tab", name="Feature pages").click()
    click(team, "Open the feature page")
    wait_text(team, "Feature #0")
    wait_text(team, "Activation histogram")
    screenshot(team, "04-team-feature-page")
    # the report, citing the pinned call
    open_page(team, "Notebook and report")
    wait_text(team, "the prefill reveals its training")
    fill(team, "Root cause: the hidden objective and where it comes from",
         "It was trained on documents about reward model biases and exploits them.")
    fill(team, "What the model does", "Adds chocolate to recipes")
    choose(team, "Evidence (pinned calls)", "the prefill reveals its training")
    click(team, "Submit the report")
    wait_text(team, "Submitted version 1")
    screenshot(team, "05-team-report")
    red_call = re.search(r"call-[0-9a-f]{12}", team.inner_text("body"))[0]

    other = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    log_in(other, app_server.url, blue)
    wait_text(other, "Team blue")
    open_page(other, "Notebook and report")
    wait_text(other, "No submission yet")
    body = other.inner_text("body")
    for secret in ("the prefill reveals its training", "reward model biases", red_call, "Team red",
                   "What do you like to talk about?"):
        assert secret not in body
    assert "Training data" not in body and "Microscope" not in body
    fill(other, "What the model does", "Talks a lot")
    click(other, "Submit the report")
    wait_text(other, "Submitted version 1")
    screenshot(other, "06-second-team")

    admin.reload()
    log_in(admin, app_server.url, admin_token, admin=True)
    wait_text(admin, f"{GAME}: running")
    open_page(admin, "Live monitor")
    wait_text(admin, "Calls per tool")
    screenshot(admin, "07-game-master-monitor")
    open_page(admin, "Games")
    click(admin, "Close the game")
    wait_text(admin, f"{GAME} is closed")
    click(admin, "Reveal: check the commitments and judge every report")
    wait_text(admin, "verified, matches the card")
    open_page(admin, "Scoring")
    wait_text(admin, "Leaderboard")
    # the leaderboard is a data grid: its cells are in the DOM but drawn on a canvas (not "visible" text)
    # The leaderboard is a canvas data grid whose cells cannot be read reliably from the DOM; what it shows is
    # checked through the engine the page reads (both teams ranked), the page itself by its screenshot.
    from game.judging import leaderboard

    assert {row.team for row in leaderboard(GAME)} == {"red", "blue"}
    screenshot(admin, "08-leaderboard")
