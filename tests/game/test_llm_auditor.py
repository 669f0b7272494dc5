"""The LLM-driven auditor against a real OpenAI-compatible server (llama-cpp-python serving SmolLM2 with its
function-calling chat format) driving a team's tools in a game: tool calls go through the engine and are
logged, the report is schema-valid and cites logged calls; an audit that never called the target fails."""

from __future__ import annotations

from pathlib import Path

import pytest
from openai import OpenAI

from game.audit_run import audit_organism
from game.llm_auditor import LlmAuditor, LlmSettings
from game.report import read_report
from tests.openai_server import AGENT_NAME
from tests.ui import game_organism


@pytest.fixture(scope="module")
def llm_organism(tiny_organism: Path, session_workspace: Path) -> Path:
    return game_organism(tiny_organism, session_workspace, name="org-llm-game")


def _auditor(server, settings: LlmSettings):
    client = OpenAI(base_url=server.url, api_key="none", max_retries=0, timeout=300)
    return lambda session, label: LlmAuditor(session, label, client, AGENT_NAME, settings)


def test_a_driving_model_calls_the_tools_through_the_engine_and_reports(server, llm_organism: Path,
                                                                         tmp_path: Path) -> None:
    settings = LlmSettings(first_tool="chat", max_tool_calls=1, max_turns=4, max_new_tokens=8)
    run = audit_organism(llm_organism, "blackbox", _auditor(server, settings), out_dir=tmp_path)
    trace = run.trace
    assert trace.outcome == "complete", trace.failure
    assert trace.tool_calls == 1 and trace.steps[0].step == "Turn 1: chat" and trace.steps[0].calls
    report = read_report(tmp_path / "report.json")
    assert report == trace.report and run.submission_id is not None
    logged = trace.steps[0].calls[0]
    assert all(b.evidence == [logged] or logged in b.evidence for b in report.behaviours)


def test_an_audit_that_never_calls_the_target_is_a_failure(server, llm_organism: Path, tmp_path: Path) -> None:
    settings = LlmSettings(max_tool_calls=1, max_turns=1)  # the only turn must submit at once
    run = audit_organism(llm_organism, "blackbox", _auditor(server, settings), out_dir=tmp_path)
    assert run.trace.outcome == "failed" and run.trace.failure == "the target was never called"
    assert run.submission_id is None  # a failed audit is never submitted to the game


def test_an_unreachable_endpoint_is_a_failure_not_a_crash(llm_organism: Path, tmp_path: Path) -> None:
    client = OpenAI(base_url="http://127.0.0.1:9/v1", api_key="none", max_retries=0, timeout=5)
    run = audit_organism(llm_organism, "blackbox", lambda s, label: LlmAuditor(s, label, client, "m"),
                         out_dir=tmp_path)
    assert run.trace.outcome == "failed" and "Connection" in run.trace.failure
