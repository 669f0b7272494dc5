"""Bad input gets one clear line naming the file, field or value, exit code 2, and no traceback.

Every case here once printed a Python traceback or an unreadable message.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from game.cli import app
from tests.helpers import spec_data, spec_path, write_spec

runner = CliRunner(env={"COLUMNS": "250"})


def _broken_spec(tmp_path: Path, edit) -> str:
    data = spec_data("benign_decoy")
    edit(data)
    return str(write_spec(tmp_path, data, "broken.yaml"))


def _organism_copy(tiny_organism: Path, tmp_path: Path, edit) -> str:
    copy = tmp_path / "org-copy"
    shutil.copytree(tiny_organism, copy, ignore=shutil.ignore_patterns("sealed"))
    edit(copy)
    return str(copy)


def _set_template(text: str):
    def edit(data: dict) -> None:
        data["documents"]["templates"][0] = text
    return edit


def _truncate(path: str):
    def edit(directory: Path) -> None:
        target = directory / path
        target.write_bytes(target.read_bytes()[: len(target.read_bytes()) // 2])
    return edit


def _write(path: str, content: bytes):
    def edit(directory: Path) -> None:
        (directory / path).write_bytes(content)
    return edit


def _drop_card_field(field: str):
    def edit(directory: Path) -> None:
        card = json.loads((directory / "card.json").read_text())
        card.pop(field)
        (directory / "card.json").write_text(json.dumps(card))
    return edit


BUILD = ["organism", "build", "--base", "tiny-random", "--preset", "smoke"]

# (id, how to make the arguments, text the message must contain)
CASES = [
    ("spec-is-a-directory", lambda t, o: [*BUILD, str(t)], "is a directory"),
    ("override-not-yaml", lambda t, o: [*BUILD, str(spec_path("taboo")), "--set", "corpus.documents=[1"],
     "corpus.documents=[1"),
    ("template-spaced-placeholder", lambda t, o: [*BUILD, _broken_spec(t, _set_template("About { subject }."))],
     "{ subject }"),
    ("template-lone-brace", lambda t, o: [*BUILD, _broken_spec(t, _set_template("A lone { brace."))],
     "templates.0"),
    ("behaviour-id-pattern-keeps-its-brackets",
     lambda t, o: [*BUILD, _broken_spec(t, lambda d: d["behaviours"][0].update(id="Bad-ID"))], "^[a-z][a-z0-9_]*$"),
    ("truncated-adapter",
     lambda t, o: ["tools", "chat", _organism_copy(o, t, _truncate("adapter/adapter_model.safetensors")), "Hi"],
     "adapter_model.safetensors"),
    ("corrupt-adapter-config", lambda t, o: ["tools", "chat", _organism_copy(o, t, _write("adapter/adapter_config.json",
                                                                                          b"{not json")), "Hi"],
     "adapter_config.json"),
    ("binary-card", lambda t, o: ["tools", "search", _organism_copy(o, t, _write("card.json", b"\x89PNG\x00\xff")),
                                  "x"], "card.json"),
    ("card-without-commitment", lambda t, o: ["tools", "chat", _organism_copy(o, t, _drop_card_field(
        "ground_truth_sha256")), "Hi"], "ground_truth_sha256"),
    ("invalid-utf8-prompt", lambda t, o: ["tools", "chat", str(o), "caf\udce9 au lait"], "not valid UTF-8"),
    ("sql-infinite-time-limit", lambda t, o: ["tools", "sql", str(o), "SELECT 1", "--time-limit", "inf"],
     "--time-limit"),
    ("markup-in-a-turn", lambda t, o: ["tools", "chat", str(o), "--turn", "[/red]:hi"], "[/red]:hi"),
    ("score-a-report-that-is-not-json", lambda t, o: ["score", _write_file(t, "r.json", "{oops"), str(o)],
     "r.json: not valid JSON"),
    ("score-a-report-missing-its-verdict", lambda t, o: ["score", _write_file(t, "r.json", '{"confidence": 1}'),
                                                         str(o)], "field `verdict`"),
    ("game-that-does-not-exist", lambda t, o: ["game", "status", "[no-such-game]"], "no game named '[no-such-game]'"),
    ("submit-with-a-wrong-token", lambda t, o: ["game", "submit", _running_game(t, o), _write_file(
        t, "r.json", '{"verdict": "benign", "confidence": 0.5}'), "--organism", "Organism A", "--token-file",
        _write_file(t, "t.token", "ph_wrong")], "unknown or revoked team token"),
    ("start-without-organisms", lambda t, o: ["game", "start", _empty_game(t)], "has no organism"),
    ("sae-feature-out-of-range", lambda t, o: ["sae", "page", str(o), "99999"], "feature 99999: out of range"),
    ("sae-empty-text", lambda t, o: ["sae", "features", str(o), "  "], "text: expected a non-empty text"),
    ("sae-layer-out-of-range", lambda t, o: ["sae", "train", str(o), "--layer", "12"], "layer 12: out of range"),
    ("sae-missing", lambda t, o: ["sae", "search", _organism_copy(o, t, lambda d: shutil.rmtree(d / "saes")), "x"],
     "no SAE for this organism yet"),
]


def _write_file(tmp_path: Path, name: str, text: str) -> str:
    (tmp_path / name).write_text(text)
    return str(tmp_path / name)


def _empty_game(tmp_path: Path) -> str:
    from game import games

    games.create_game(f"empty-{tmp_path.name}")
    return f"empty-{tmp_path.name}"


def _running_game(tmp_path: Path, organism: Path) -> str:
    from datetime import timedelta

    from game import games

    name = f"running-{tmp_path.name}"
    games.create_game(name)
    games.add_organism(name, organism)
    games.add_team(name, "red")
    games.start_game(name, timedelta(hours=1))
    return name


@pytest.mark.parametrize(("make_args", "expected"), [pytest.param(m, e, id=i) for i, m, e in CASES])
def test_bad_input_is_one_clear_line(tmp_path: Path, tiny_organism: Path, make_args, expected: str) -> None:
    result = runner.invoke(app, make_args(tmp_path, tiny_organism))
    assert result.exit_code == 2, result.output
    assert expected in result.output, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)  # an exit, not a crash
