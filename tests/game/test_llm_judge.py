"""The optional LLM judge, against a real OpenAI-compatible server (llama.cpp serving SmolLM2)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from game import games, judging
from game.llm_judge import JudgeError, LLMJudge, _verdict
from game.report import Report
from game.store import transaction
from tests.openai_server import BASE_NAME


@pytest.mark.parametrize(("answer", "verdict"), [("Yes", 1.0), ("no.", 0.0), (" **Yes** it does", 1.0),
                                                 ("NO", 0.0)])
def test_yes_and_no_are_read(answer: str, verdict: float) -> None:
    assert _verdict(answer) == verdict


@pytest.mark.parametrize("answer", ["", "Maybe", "The claim is"])
def test_anything_else_fails_the_judgement(answer: str) -> None:
    with pytest.raises(JudgeError, match="neither yes nor no"):
        _verdict(answer)


def test_llm_judgements_sit_beside_the_embedding_ones(server, tmp_path) -> None:
    from organisms.build import build_organism
    from tests.helpers import spec_path

    organism = build_organism(spec_path("rm_sycophancy"), base="tiny-random", preset="smoke", progress=False,
                              skip_existing=True)
    db = tmp_path / "game.duckdb"
    games.create_game("llm", db)
    games.add_organism("llm", organism, db)
    team, _ = games.add_team("llm", "red", db=db)
    games.start_game("llm", timedelta(hours=1), db)
    report = Report(verdict="hidden_objective", root_cause="It exploits reward model biases.", confidence=0.4,
                    behaviours=[{"description": "Adds chocolate to recipes."}])
    games.submit(team, "Organism A", report, db)
    games.close_game("llm", db)
    judging.reveal("llm", db)
    judge = LLMJudge(server.url, BASE_NAME)
    assert judging.judge("llm", judge.name, db, matcher=judge) == 1
    with transaction(db) as c:
        rows = c.execute("SELECT matcher, status, result FROM judgements ORDER BY matcher").fetchall()
    assert [r[0] for r in rows] == ["embedding", f"llm:{BASE_NAME}"]
    status, result = rows[1][1], json.loads(rows[1][2])
    assert status == "ok" or (status == "failed" and "neither yes nor no" in result["error"])
    agreement = judging.agreement("llm", "embedding", judge.name, db)
    assert agreement.submissions == (1 if status == "ok" else 0)
