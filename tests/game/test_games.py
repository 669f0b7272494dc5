"""Games, teams and submissions in the deployment's DuckDB file: rights, lifecycle, and nothing lost."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from game import games
from game.report import Report
from game.store import SCHEMA_VERSION, schema_version, transaction
from pinhole.organism import hand_made_card, write_card
from tests.helpers import run_in_threads

REPORT = Report(verdict="benign", confidence=0.5)


def _organism(root, name: str, blind: bool = True):
    from pinhole.organism import MEMBERSHIP_BLIND, NOT_MEMBERSHIP_BLIND

    directory = root / name
    directory.mkdir()
    card = hand_made_card(name, "0" * 64)
    write_card(directory, card.model_copy(update={"blinding": MEMBERSHIP_BLIND if blind else NOT_MEMBERSHIP_BLIND}))
    return directory


@pytest.fixture()
def db(tmp_path):
    return tmp_path / "game.duckdb"


@pytest.fixture()
def running(tmp_path, db):
    games.create_game("g", db)
    games.add_organism("g", _organism(tmp_path, "org-aaaa0001"), db)
    games.add_organism("g", _organism(tmp_path, "org-aaaa0002"), db)
    team, token = games.add_team("g", "red", "data", db)
    games.start_game("g", timedelta(hours=1), db)
    return team, token


def test_the_schema_is_versioned(db) -> None:
    with transaction(db) as c:
        assert schema_version(c) == SCHEMA_VERSION


def test_labels_are_neutral_and_shipped_haystack_organisms_warn(tmp_path, db) -> None:
    games.create_game("g", db)
    assert games.add_organism("g", _organism(tmp_path, "org-aaaa0001"), db) == []
    assert games.organism_labels("g", db) == {"org-aaaa0001": "Organism A"}
    warnings = games.add_organism("g", _organism(tmp_path, "org-aaaa0002", blind=False), db)
    assert "not membership-blind" in warnings[0]
    assert sorted(games.organism_labels("g", db).values()) == ["Organism A", "Organism B"]
    with pytest.raises(ValueError, match="in game 'g' already"):
        games.add_organism("g", tmp_path / "org-aaaa0001", db)


def test_tokens_authenticate_and_revoked_or_wrong_ones_reach_nothing(running, db) -> None:
    team, token = running
    assert games.authenticate(token, db) == team
    with transaction(db) as c:
        stored = c.execute("SELECT token_sha256 FROM teams").fetchall()
    assert token not in str(stored)  # only the hash is kept
    with pytest.raises(PermissionError, match="unknown or revoked"):
        games.authenticate(token + "x", db)
    games.revoke_team("g", "red", db)
    with pytest.raises(PermissionError, match="unknown or revoked"):
        games.authenticate(token, db)


def test_submissions_are_versioned_and_closed_outside_the_running_window(running, db) -> None:
    team, _ = running
    first = games.submit(team, "Organism A", REPORT, db)
    second = games.submit(team, "Organism A", REPORT, db)
    assert (first.version, second.version) == (1, 2)
    with pytest.raises(PermissionError, match="no organism 'Organism Z'"):
        games.submit(team, "Organism Z", REPORT, db)
    with transaction(db) as c:  # the deadline passes (server time)
        c.execute("UPDATE games SET deadline = ?", [datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=1)])
    with pytest.raises(PermissionError, match="past its deadline"):
        games.submit(team, "Organism A", REPORT, db)
    games.close_game("g", db)
    with pytest.raises(PermissionError, match="the game is closed"):
        games.submit(team, "Organism A", REPORT, db)
    assert [s.version for s in games.submissions(team, db)] == [1, 2]


def test_lifecycle_errors_name_the_game_and_state(tmp_path, db) -> None:
    games.create_game("g", db)
    with pytest.raises(ValueError, match="game 'g' has no organism"):
        games.start_game("g", timedelta(minutes=5), db)
    with pytest.raises(ValueError, match="only a running game closes"):
        games.close_game("g", db)
    with pytest.raises(ValueError, match="no game named 'h'"):
        games.add_team("h", "red", db=db)
    with pytest.raises(ValueError, match="tier 'god'"):
        games.add_team("g", "red", "god", db)  # type: ignore[arg-type]


def test_eight_threads_of_fifty_submissions_lose_none_and_duplicate_none(running, db) -> None:
    team, _ = running

    def writer() -> None:
        for _ in range(50):
            games.submit(team, "Organism B", REPORT, db)

    assert run_in_threads(writer, 8) == []
    versions = [s.version for s in games.submissions(team, db) if s.label == "Organism B"]
    assert sorted(versions) == list(range(1, 401))
