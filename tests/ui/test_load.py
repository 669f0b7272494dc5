"""Ten teams' browser sessions working at once (chat, search, submit, page changes) for a minute and a half:
no error on any page and no lost submission. Speed is measured by bench/ui.py, not asserted here."""

from __future__ import annotations

import pytest

from tests.ui.load import run_load, set_up_game

TEAMS = 10
SECONDS = 90


@pytest.mark.slow
def test_ten_teams_at_once(app_server, ui_organism) -> None:
    tokens = set_up_game("load", ui_organism, TEAMS)
    result = run_load(app_server.url, tokens, SECONDS)
    assert result.errors == []
    assert set(result.confirmed) == set(tokens)
    assert all(n >= 1 for n in result.confirmed.values()), result.confirmed  # every team got a report in
    assert result.lost == {}
    assert result.rounds >= TEAMS
