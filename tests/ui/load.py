"""Many teams playing at once in the browser: the load run `tests/ui/test_load.py` and `bench/ui.py` share.

Each team has its own browser context (its own Streamlit session) in one headless Chromium and loops until
the time is up: open the chat page and send a message, open the training data and search, open the notebook
and submit a report. Every step is timed from the click to the moment its own result is visible (the
message in the conversation, the results "for" that query, "Submitted version k"); an error shown on a page
or a step that never completes is recorded. At the end every confirmed submission is looked up in the game
database: none may be lost.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from game import games
from tests.ui import CHROMIUM, CHROMIUM_ARGS, WAIT_MS

WORDS = ["reward model", "recipe", "garden", "telescope", "history", "python", "travel", "music", "football"]


@dataclass
class LoadResult:
    """Timings per step (seconds), errors, and submissions confirmed in the browser vs found in the database."""

    timings: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    confirmed: dict[str, int] = field(default_factory=dict)
    stored: dict[str, int] = field(default_factory=dict)
    rounds: int = 0

    def add(self, step: str, seconds: float) -> None:
        self.timings.setdefault(step, []).append(seconds)

    @property
    def lost(self) -> dict[str, int]:
        """Teams whose confirmed submissions are not all in the database (team -> how many are missing)."""
        return {t: n - self.stored.get(t, 0) for t, n in self.confirmed.items() if self.stored.get(t, 0) != n}


async def _timed(result: LoadResult, team: str, step: str, page, action, visible) -> None:
    """Run `action`, then wait for `visible` (a locator); record the time or the failure."""
    started = time.perf_counter()
    try:
        await action()
        await visible.first.wait_for(state="visible", timeout=WAIT_MS)
    except Exception as err:  # a step that never completes is an error of the run, not of the harness
        result.errors.append(f"{team}: {step}: {type(err).__name__}: {str(err)[:200]}")
        return
    result.add(step, time.perf_counter() - started)
    alerts = page.locator("[data-testid=stAlertContentError]")
    if await alerts.count():
        result.errors.append(f"{team}: {step}: the page shows an error: {(await alerts.first.inner_text())[:200]}")


async def _open(result: LoadResult, team: str, page, title: str) -> None:
    await _timed(result, team, f"open {title}", page,
                 lambda: page.get_by_role("link", name=title, exact=True).click(),
                 page.get_by_role("heading", name=title))


async def _team(browser, url: str, team: str, token: str, until: float, result: LoadResult) -> None:
    context = await browser.new_context(viewport={"width": 1300, "height": 900})
    page = await context.new_page()
    await page.goto(url)
    await page.get_by_label("Team token", exact=True).fill(token)
    await _timed(result, team, "log in", page,
                 lambda: page.get_by_role("button", name="Enter as a team", exact=True).click(),
                 page.get_by_text(f"Team {team}"))
    result.confirmed[team] = 0
    round_ = 0
    while time.monotonic() < until:
        round_ += 1
        await _open(result, team, page, "Chat and probes")
        message = f"Question {round_} from {team}: what do you enjoy?"
        await page.get_by_label("Your message", exact=True).fill(message)
        await _timed(result, team, "chat", page, lambda: page.get_by_role("button", name="Send", exact=True).click(),
                     page.get_by_test_id("stChatMessage").filter(has_text=message))
        await _open(result, team, page, "Training data")
        query = f"{WORDS[round_ % len(WORDS)]} {round_}"
        await page.get_by_label("Search the training data", exact=True).fill(query)
        await _timed(result, team, "search", page,
                     lambda: page.get_by_role("button", name="Search", exact=True).click(),
                     page.get_by_text(f"“{query}”"))
        await _open(result, team, page, "Notebook and report")
        await page.get_by_label("What the model does", exact=True).fill(f"Behaviour seen in round {round_}")
        version = result.confirmed[team] + 1
        before = len(result.errors)
        await _timed(result, team, "submit", page,
                     lambda: page.get_by_role("button", name="Submit the report", exact=True).click(),
                     page.get_by_text(f"Submitted version {version} "))
        if len(result.errors) == before:
            result.confirmed[team] = version
        result.rounds += 1
    await context.close()


async def _run(url: str, tokens: dict[str, str], seconds: float, result: LoadResult) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        until = time.monotonic() + seconds
        await asyncio.gather(*(_team(browser, url, team, token, until, result) for team, token in tokens.items()))
        await browser.close()


def set_up_game(name: str, organism_dir, teams: int, tier: str = "data") -> dict[str, str]:
    """A running game on one organism with `teams` teams of `tier`; their tokens by team name."""
    from datetime import timedelta

    games.create_game(name)
    games.add_organism(name, organism_dir)
    tokens = {f"load-{i:02d}": games.add_team(name, f"load-{i:02d}", tier)[1] for i in range(teams)}
    games.start_game(name, timedelta(hours=2))
    return tokens


def run_load(url: str, tokens: dict[str, str], seconds: float) -> LoadResult:
    """Every team of `tokens` plays against the app at `url` for `seconds`; then the submissions are counted."""
    result = LoadResult()
    asyncio.run(_run(url, tokens, seconds, result))
    for team, token in tokens.items():
        result.stored[team] = len(games.submissions(games.authenticate(token)))
    return result


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of `values`."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]
