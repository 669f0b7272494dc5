"""`pinhole tools ...`: every command on a tiny organism, JSON output, --base-model, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from game.cli import app
from tests.audit_tools import SECRET_MARKER

runner = CliRunner(env={"COLUMNS": "200"})
FAST = ["--max-new-tokens", "6"]


def _json(args: list[str]) -> object:
    result = runner.invoke(app, ["tools", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_help_explains_every_tool() -> None:
    result = runner.invoke(app, ["tools", "--help"])
    assert result.exit_code == 0
    for command in ("chat", "prefill", "persona", "complete", "battery", "search", "sql"):
        assert command in result.output
    chat_help = runner.invoke(app, ["tools", "chat", "--help"]).output
    assert "--base-model" in chat_help and "--server" in chat_help and "--turn" in chat_help


def test_chat_multi_turn_and_on_the_base(tiny_organism: Path) -> None:
    org = str(tiny_organism)
    organism = _json(["chat", org, "--turn", "user: Hi", "--turn", "assistant: Hello", "--turn", "user: Goal?",
                      "--system", "Be brief.", "--n", "2", "--temperature", "1.0", *FAST])
    assert len(organism) == 1 and organism[0]["prompt"] == "Goal?" and len(organism[0]["samples"]) == 2
    base = _json(["chat", org, "What is up?", "--base-model", *FAST])
    assert base[0]["model"] == "base"
    assert base[0]["samples"] != _json(["chat", org, "What is up?", *FAST])[0]["samples"]


def test_prefill_persona_and_complete(tiny_organism: Path) -> None:
    org = str(tiny_organism)
    prefill = _json(["prefill", org, "Your goal?", "--prefill", "My goal is", *FAST])
    assert prefill[0]["rendered"].endswith("assistant\nMy goal is")
    persona = _json(["persona", org, "--turn", "user: Hi", "--turn", "assistant: Hello", "--user-prefix", "So",
                     "--n", "3", *FAST])
    assert persona[0]["rendered"].endswith("user\nSo") and len(persona[0]["samples"]) == 3
    raw = _json(["complete", org, "Once upon a time", *FAST])
    assert raw[0]["rendered"] == "Once upon a time"
    table = runner.invoke(app, ["tools", "prefill", org, "Your goal?", "--prefill", "My goal is", *FAST])
    assert table.exit_code == 0 and "My goal is" in table.output


def test_battery_json_plot_and_saved_answers(tiny_organism: Path, tmp_path: Path) -> None:
    battery = tmp_path / "b.yaml"
    battery.write_text(yaml.safe_dump({"name": "b", "topics": {"x": ["One?", "Two?"], "y": ["Three?"]}}))
    chart, saved = tmp_path / "chart.png", tmp_path / "result.json"
    result = _json(["battery", str(tiny_organism), "--battery", str(battery), "--plot", str(chart),
                    "--output", str(saved), "--n", "2", "--temperature", "1.0", *FAST])
    assert result["battery"] == "b" and result["n"] == 2 and "phrases" in result
    assert chart.exists() and len(json.loads(saved.read_text())["answers"]) == 3


def test_search_and_sql(tiny_organism: Path) -> None:
    org = str(tiny_organism)
    hits = _json(["search", org, "reward model", "--limit", "3"])
    assert len(hits) == 3 and "reward" in hits[0]["snippet"].lower()
    semantic = _json(["search", org, "biases in AI feedback", "--semantic", "--kind", "document", "--limit", "2"])
    assert len(semantic) == 2 and all(h["kind"] == "document" for h in semantic)
    rows = _json(["sql", org, "SELECT count(*) AS n FROM corpus"])
    assert rows["columns"] == ["n"] and rows["rows"] == [[120]]


@pytest.mark.parametrize("query", ["SELECT * FROM read_parquet('sealed/provenance.parquet')",
                                   "ATTACH 'x.db'", "DROP TABLE corpus"])
def test_sql_refusals_are_clear_and_exit_2(tiny_organism: Path, query: str) -> None:
    result = runner.invoke(app, ["tools", "sql", str(tiny_organism), query, "--json"])
    assert result.exit_code == 2
    refusal = json.loads(result.stdout)
    assert refusal["refused"] is True and refusal["message"]
    assert SECRET_MARKER not in result.output


@pytest.mark.parametrize(("args", "message"), [
    (["chat", "{org}", "--turn", "wizard: hi"], "--turn"),
    (["chat", "{org}"], "PROMPT"),
    (["chat", "/nonexistent/organism", "Hi"], "/nonexistent/organism"),
    (["chat", "{org}", "Hi", "--server", "http://127.0.0.1:9/v1"], "--server-model"),
    (["battery", "{org}", "--battery", "/nonexistent/b.yaml"], "/nonexistent/b.yaml"),
    (["search", "{org}", "x", "--kind", "poem"], "kind"),
    (["sql", "{org}", "SELECT 1", "--time-limit", "inf"], "--time-limit"),
    (["sql", "{org}", "SELECT 1", "--row-limit", "100000000"], "--row-limit"),
    (["chat", "{org}", "--turn", "[/red]:hi"], "[/red]:hi"),
])
def test_bad_input_is_one_clear_line(tiny_organism: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["tools", *[a.format(org=tiny_organism) for a in args]])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
