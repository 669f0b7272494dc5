"""`pinhole organism list`: one unreadable card is named and skipped, the listing goes on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from game.cli import app
from pinhole.organism import hand_made_card, write_card

runner = CliRunner(env={"COLUMNS": "200"})


@pytest.fixture
def workspace_with_a_bad_card(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PINHOLE_HOME", str(tmp_path))
    organisms = tmp_path / "organisms"
    (organisms / "org-good").mkdir(parents=True)
    write_card(organisms / "org-good", hand_made_card("org-good", "ab" * 32))
    (organisms / "org-binary").mkdir()
    (organisms / "org-binary" / "card.json").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    (organisms / "org-incomplete").mkdir()
    (organisms / "org-incomplete" / "card.json").write_text('{"format_version": 3, "organism_id": "org-incomplete"}')
    (organisms / "org-old").mkdir()
    (organisms / "org-old" / "card.json").write_text('{"organism_id": "org-old"}')  # format 1, an older Pinhole
    return organisms


def test_list_names_bad_cards_and_goes_on(workspace_with_a_bad_card: Path) -> None:
    result = runner.invoke(app, ["organism", "list"])
    assert result.exit_code == 0, result.output
    assert "org-good" in result.stdout
    assert "org-binary" in result.stderr and "org-incomplete" in result.stderr
    assert "ground_truth_sha256" in result.stderr  # the missing field is named
    assert "org-old" in result.stderr and "older Pinhole" in result.stderr
    assert "Traceback" not in result.output


def test_list_json_reports_bad_cards(workspace_with_a_bad_card: Path) -> None:
    result = runner.invoke(app, ["organism", "list", "--json"])
    listing = json.loads(result.stdout)
    assert [row["organism_id"] for row in listing["organisms"]] == ["org-good"]
    assert sorted(Path(row["directory"]).name for row in listing["unreadable"]) == ["org-binary", "org-incomplete",
                                                                                    "org-old"]
