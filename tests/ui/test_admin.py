"""The game master's admin token (hash only, 0600, one message for every refusal), `pinhole serve`'s set-up of
it, and the engine's views the game master's pages read (the live monitor, judged submissions)."""

from __future__ import annotations

import stat

import pytest
from typer.testing import CliRunner

from game import admin, games
from game.serve_cli import prepare_admin_token, streamlit_argv


def test_a_new_admin_token_is_kept_as_a_private_hash(tmp_path) -> None:
    token = admin.new_admin_token(tmp_path)
    path = admin.admin_hash_path(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert token not in path.read_text()
    admin.check_admin_token(token, tmp_path)
    for wrong in ("", token + "x", token.upper(), "ph_" + token[4:]):
        with pytest.raises(PermissionError, match="^wrong or missing admin token$"):
            admin.check_admin_token(wrong, tmp_path)
    assert admin.new_admin_token(tmp_path) != token  # a new one replaces it
    with pytest.raises(PermissionError, match="^wrong or missing admin token$"):
        admin.check_admin_token(token, tmp_path)


def test_no_admin_token_set_up_refuses_everything(tmp_path) -> None:
    with pytest.raises(PermissionError, match="^wrong or missing admin token$"):
        admin.check_admin_token("anything-at-all-long-enough", tmp_path)
    with pytest.raises(ValueError, match="at least 16 characters"):
        admin.set_admin_token("short", tmp_path)


def test_serve_sets_up_the_token_once(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PINHOLE_HOME", str(tmp_path))
    monkeypatch.delenv("PINHOLE_ADMIN_TOKEN", raising=False)
    first = prepare_admin_token(None, new_token=False)
    assert first is not None and prepare_admin_token(None, new_token=False) is None  # printed once
    admin.check_admin_token(first, tmp_path)
    kept = tmp_path / "kept.token"
    kept.write_text("operator-kept-token-0123456789\n")
    assert prepare_admin_token(kept, new_token=False) is None
    admin.check_admin_token("operator-kept-token-0123456789", tmp_path)
    monkeypatch.setenv("PINHOLE_ADMIN_TOKEN", "from-the-environment-0123456789")
    assert prepare_admin_token(None, new_token=False) is None
    admin.check_admin_token("from-the-environment-0123456789", tmp_path)


def test_serve_help_and_command() -> None:
    from game.cli import app

    result = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "160"})
    assert result.exit_code == 0
    for option in ("--host", "--port", "--workspace", "--admin-token-file", "--new-admin-token"):
        assert option in result.output
    argv = streamlit_argv("127.0.0.1", 8123)
    assert argv[1:4] == ["-m", "streamlit", "run"] and argv[4].endswith("ui/app.py")
    assert "8123" in argv and "127.0.0.1" in argv


def test_the_monitor_and_the_judged_submissions(tmp_path) -> None:
    from game.report import Report

    db, token = games.hand_made_game(tmp_path, name="watch", tier="blackbox")
    session_team = games.authenticate(token, db)
    games.submit(session_team, "Organism A", Report(verdict="benign", confidence=0.4), db)
    _, quiet = games.add_team("watch", "quiet", "data", db)
    activity = {a.team: a for a in admin.team_activity("watch", db)}
    assert set(activity) == {"writers", "quiet"}
    assert activity["writers"].submissions == 1 and activity["writers"].tier == "blackbox"
    assert activity["quiet"].calls == 0 and activity["quiet"].tier == "data"
    subs = admin.judged_submissions("watch", db=db)
    assert [(s.team, s.version, s.status) for s in subs] == [("writers", 1, None)]
    assert admin.list_games(db) == [("watch", "running")]
    games.close_game("watch", db)
    assert admin.recent_calls("watch", db=db) == []
