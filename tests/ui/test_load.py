"""Four teams' browser sessions working at once (chat, search, submit, page changes) for half a minute: no
error on any page and no lost submission. Speed, and ten teams for three minutes, are measured by bench/ui.py,
not asserted here."""

from __future__ import annotations

import pytest

from tests.ui.load import run_load, set_up_game

TEAMS = 4
SECONDS = 30


@pytest.mark.slow
def test_teams_at_once(app_server, ui_organism) -> None:
    tokens = set_up_game("load", ui_organism, TEAMS)
    result = run_load(app_server.url, tokens, SECONDS)
    assert result.errors == []
    assert set(result.confirmed) == set(tokens)
    assert all(n >= 1 for n in result.confirmed.values()), result.confirmed  # every team got a report in
    assert result.lost == {}
    assert result.rounds >= TEAMS
