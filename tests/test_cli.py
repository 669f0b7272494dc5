"""The `pinhole` command line: help text, JSON output, clear errors."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from game.cli import app
from tests.helpers import spec_data, write_spec

runner = CliRunner(env={"COLUMNS": "250"})


def test_help_lists_the_sub_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "organism" in result.output and "base" in result.output
    build_help = runner.invoke(app, ["organism", "build", "--help"])
    assert "--preset" in build_help.output and "--set" in build_help.output


def test_list_json_is_one_document() -> None:
    result = runner.invoke(app, ["organism", "list", "--json"])
    assert result.exit_code == 0
    listing = json.loads(result.stdout)
    assert isinstance(listing["organisms"], list) and isinstance(listing["unreadable"], list)


def test_bad_spec_fails_with_file_and_field(tmp_path) -> None:
    data = spec_data("taboo")
    data["behaviours"][0]["detector"]["kind"] = "magic"
    path = write_spec(tmp_path, data, "taboo_broken.yaml")
    result = runner.invoke(app, ["organism", "build", str(path), "--base", "tiny-random", "--preset", "smoke"])
    assert result.exit_code == 2
    assert "taboo_broken.yaml" in result.output and "behaviours.0.detector.kind" in result.output
    assert "Traceback" not in result.output
