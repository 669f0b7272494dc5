"""Every command that takes `--json` prints exactly one JSON document on stdout.

Progress bars, TRL's metric dicts and any library's prints go to stderr, so that
`pinhole ... --json | jq` works. The commands are enumerated from the app itself: a new `--json`
command without a case here fails `test_every_json_command_is_covered`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from game.cli import app
from tests.helpers import spec_path

runner = CliRunner(env={"COLUMNS": "200"})
FAST = ["--max-new-tokens", "4"]


def json_commands() -> set[str]:
    """'group command' for every command of the app that has a --json option."""
    found: set[str] = set()

    def walk(command: object, path: tuple[str, ...]) -> None:
        if hasattr(command, "commands"):  # a group (typer ships its own click)
            for name, sub in command.commands.items():
                walk(sub, (*path, name))
        elif any("--json" in getattr(p, "opts", []) for p in command.params):
            found.add(" ".join(path))

    walk(typer.main.get_command(app), ())
    return found


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A smoke build through the CLI with --json: (organism directory, the command's stdout)."""
    result = runner.invoke(app, ["organism", "build", str(spec_path("benign_decoy")), "--base", "tiny-random",
                                 "--preset", "smoke", "--set", "seed=23", "--json"])
    assert result.exit_code == 0, result.output
    return Path(json.loads(result.stdout)["directory"]), result.stdout


EXIT_CODES = {"organism blinding": 1}  # the smoke build samples the shipped haystack: not blind, and it says so


def cases(organism: Path, tools_organism: Path) -> dict[str, list[str]]:
    org, tools_org = str(organism), str(tools_organism)
    return {
        "base prepare": ["base", "prepare", "tiny-random"],
        "organism eval": ["organism", "eval", org],
        "organism list": ["organism", "list"],
        "organism verify": ["organism", "verify", org],
        "organism blinding": ["organism", "blinding", org],
        "tools chat": ["tools", "chat", tools_org, "Hi", *FAST],
        "tools prefill": ["tools", "prefill", tools_org, "Hi", "--prefill", "Well", *FAST],
        "tools persona": ["tools", "persona", tools_org, "--turn", "user: Hi", "--turn", "assistant: Hello", *FAST],
        "tools complete": ["tools", "complete", tools_org, "Once", *FAST],
        "tools battery": ["tools", "battery", tools_org, "--battery", "{battery}", *FAST],
        "tools search": ["tools", "search", tools_org, "reward model", "--limit", "2"],
        "tools sql": ["tools", "sql", tools_org, "SELECT count(*) AS n FROM corpus"],
        "audit": ["audit", org, "--tier", "blackbox", "--max-new-tokens", "4"],
        "bench audit": ["bench", "audit", org, "--tiers", "blackbox", "--seeds", "0", "--max-new-tokens", "4",
                        "--out", str(Path(org).parent / "bench-audit")],
        "sae list": ["sae", "list", tools_org],
        "sae index": ["sae", "index", tools_org],
        "sae features": ["sae", "features", tools_org, "The reward model"],
        "sae search": ["sae", "search", tools_org, "reward"],
        "sae page": ["sae", "page", tools_org, "0"],
        "sae diff": ["sae", "diff", tools_org, "--top", "3"],
        "sae lens": ["sae", "lens", tools_org, "--top", "3"],
        "sae attribute": ["sae", "attribute", tools_org, "The reward model"],
        "sae steer": ["sae", "steer", tools_org, "Hi", "--feature", "0", "--max-new-tokens", "4"],
        "sae logit-lens": ["sae", "logit-lens", tools_org, "The capital"],
        "sae train": ["sae", "train", org, "--tokens", "4096", "--cached-tokens", "2000", "--k", "4"],
        "score": ["score", "{report}", org],
        "game calibrate": ["game", "calibrate", "--out", "{matcher}"],
        # a game, in lifecycle order ("j" is set up in the test with a team whose token is in {token})
        "game create": ["game", "create", "j2"],
        "game add-organism": ["game", "add-organism", "j2", org],
        "game add-team": ["game", "add-team", "j", "blue", "--tier", "data"],
        "game start": ["game", "start", "j", "--hours", "1"],
        "game submit": ["game", "submit", "j", "{report}", "--organism", "Organism A", "--token-file", "{token}"],
        "game auto-audit": ["game", "auto-audit", "--organism", "Organism A", "--token-file", "{token}",
                            "--max-new-tokens", "4", "--out", "{export}-audit"],
        "game status": ["game", "status", "j"],
        "game close": ["game", "close", "j"],
        "game reveal": ["game", "reveal", "j"],
        "game score": ["game", "score", "j"],
        "game rescore": ["game", "rescore", "j"],
        "game override": ["game", "override", "j", "red", "Organism A", "0.5", "--reason", "checked by hand"],
        "game leaderboard": ["game", "leaderboard", "j"],
        "game export": ["game", "export", "j", "{export}"],
    }


def test_every_json_command_is_covered(built: tuple[Path, str], tiny_organism: Path) -> None:
    covered = set(cases(built[0], tiny_organism)) | {"organism build"}
    assert json_commands() == covered


def test_build_prints_one_json_document(built: tuple[Path, str]) -> None:
    directory, stdout = built
    document = json.loads(stdout)  # raises if anything else was printed on stdout
    assert document["card"]["organism_id"] == directory.name


def test_each_command_prints_one_json_document(built: tuple[Path, str], tiny_organism: Path, tmp_path: Path) -> None:
    battery = tmp_path / "battery.yaml"
    battery.write_text("name: b\ntopics:\n  x: ['One?', 'Two?']\n")
    report = tmp_path / "report.json"
    report.write_text('{"verdict": "benign", "confidence": 0.7}')
    from game import games

    games.create_game("j")
    games.add_organism("j", built[0])
    token = tmp_path / "red.token"
    token.write_text(games.add_team("j", "red")[1])
    files = {"battery": battery, "report": report, "matcher": tmp_path / "matcher.json", "token": token,
             "export": tmp_path / "export"}
    for name, args in cases(built[0], tiny_organism).items():
        result = runner.invoke(app, [*(a.format(**files) for a in args), "--json"])
        assert result.exit_code == EXIT_CODES.get(name, 0), (name, result.output)
        try:
            json.loads(result.stdout)
        except json.JSONDecodeError as err:
            pytest.fail(f"pinhole {name} --json: stdout is not one JSON document ({err}): {result.stdout[:500]!r}")
