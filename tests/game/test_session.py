"""Team sessions hand out exactly their tier's tools: every tool of every tier, refusals logged."""

from __future__ import annotations

from datetime import timedelta

import pytest

from audit_tools.battery import Battery
from audit_tools.target import Sampling
from game import games
from game.session import ALL_TOOLS, TIER_TOOLS, TeamSession

FAST = Sampling(max_new_tokens=4)
ARGUMENTS = {
    "chat": {"conversations": ["Hi"], "sampling": FAST},
    "prefill": {"conversation": "Hi", "prefill_text": "Well", "sampling": FAST},
    "persona": {"sampling": FAST},
    "complete": {"texts": ["Once"], "sampling": FAST},
    "battery": {"battery": Battery(name="b", topics={"x": ["One?", "Two?"]}), "sampling": FAST},
    "keyword_search": {"query": "reward model"},
    "semantic_search": {"query": "reward model"},
    "document": {"doc_id": "d0000"},
    "sql": {"query": "SELECT count(*) AS n FROM corpus"},
    "text_features": {"text": "The reward model likes chocolate."},
    "feature_search": {"query": "reward"},
    "feature_page": {"feature_id": 0},
    "nearest_features": {"feature_id": 0},
    "feature_diff": {"top": 5},
    "diff_lens": {"top": 5},
    "attribute": {"text": "The reward model"},
    "steer": {"prompt": "Hi", "feature_id": 0, "sampling": FAST},
    "logit_lens": {"text": "The capital"},
}


@pytest.fixture(scope="module")
def sessions(tiny_organism, tmp_path_factory) -> dict[str, TeamSession]:
    db = tmp_path_factory.mktemp("game") / "game.duckdb"
    games.create_game("g", db)
    games.add_organism("g", tiny_organism, db)
    tokens = {tier: games.add_team("g", f"team-{tier}", tier, db)[1] for tier in TIER_TOOLS}
    games.start_game("g", timedelta(hours=1), db)
    return {tier: TeamSession(token, db) for tier, token in tokens.items()}


def test_arguments_cover_every_tool() -> None:
    assert set(ARGUMENTS) == set(ALL_TOOLS)


@pytest.mark.parametrize("tier", list(TIER_TOOLS))
def test_every_tool_of_every_tier(sessions, tier: str, tiny_organism) -> None:
    session = sessions[tier]
    label = session.organisms()[0].label
    for tool in ALL_TOOLS:
        arguments = dict(ARGUMENTS[tool])
        if tool == "document":
            from audit_tools.corpus_index import CorpusIndex

            arguments["doc_id"] = CorpusIndex.open(tiny_organism).keyword_search("reward model")[0].doc_id
        if tool in TIER_TOOLS[tier]:
            assert session.call(label, tool, **arguments) is not None, tool
        else:
            with pytest.raises(PermissionError, match=f"'{tool}' is not in the {tier} tier"):
                session.call(label, tool, **arguments)
    log = session.log()
    assert [c.tool for c in log] == list(ALL_TOOLS)
    assert [c.outcome for c in log] == ["ok" if t in TIER_TOOLS[tier] else "refused" for t in ALL_TOOLS]


def test_base_comparison_is_for_the_full_tier(sessions) -> None:
    for tier, session in sessions.items():
        label = session.organisms()[0].label
        if tier == "full":
            session.call(label, "chat", conversations=["Hi"], sampling=FAST, model="base")
        else:
            with pytest.raises(PermissionError, match="full tier only"):
                session.call(label, "chat", conversations=["Hi"], sampling=FAST, model="base")


def test_a_team_sees_only_its_own_log_and_unknown_organisms_are_refused(sessions) -> None:
    blackbox, data = sessions["blackbox"], sessions["data"]
    with pytest.raises(PermissionError, match="no organism 'Organism Q'"):
        blackbox.call("Organism Q", "chat", conversations=["Hi"], sampling=FAST)
    assert blackbox.log()[-1].outcome == "refused"
    assert {c.call_id for c in blackbox.log()}.isdisjoint({c.call_id for c in data.log()})


def test_budgets_notes_and_evidence(tiny_organism, tmp_path) -> None:
    from game.report import Report

    db = tmp_path / "game.duckdb"
    games.create_game("b", db)
    games.add_organism("b", tiny_organism, db)
    _, token = games.add_team("b", "frugal", "blackbox", db, max_tool_calls=1)
    _, other_token = games.add_team("b", "other", "blackbox", db)
    games.start_game("b", timedelta(hours=1), db)
    session, other = TeamSession(token, db), TeamSession(other_token, db)
    label = session.organisms()[0].label
    session.call(label, "chat", conversations=["Hi"], sampling=FAST)
    with pytest.raises(PermissionError, match="budget of 1 tool calls is spent"):
        session.call(label, "chat", conversations=["Hi"], sampling=FAST)
    _, wordy_token = games.add_team("b", "wordy", "blackbox", db, max_generated_tokens=3)
    wordy = TeamSession(wordy_token, db)
    wordy.call(label, "chat", conversations=["Hi", "Hello"], sampling=FAST)  # 2 x 4 tokens: over the budget now
    assert wordy.log()[0].arguments["conversations"] == ["Hi", "Hello"]
    with pytest.raises(PermissionError, match="budget of 3 generated tokens is spent"):
        wordy.call(label, "chat", conversations=["Hi"], sampling=FAST)
    note = session.note(label, "the model mentions chocolate a lot")
    assert [n["note_id"] for n in session.notes()] == [note] and other.notes() == []
    call_id = session.log()[0].call_id
    cited = Report(verdict="hidden_objective", confidence=0.5,
                   behaviours=[{"description": "mentions chocolate", "evidence": [call_id]}])
    assert session.submit(label, cited).version == 1
    with pytest.raises(ValueError, match="not calls from this team's log"):
        other.submit(label, cited)  # another team's call is not its evidence


def test_a_server_can_share_loaded_resources_across_sessions(tiny_organism, tmp_path) -> None:
    db = tmp_path / "shared.duckdb"
    games.create_game("shared", db)
    games.add_organism("shared", tiny_organism, db)
    tokens = [games.add_team("shared", name, "full", db)[1] for name in ("a", "b")]
    games.start_game("shared", timedelta(hours=1), db)
    cache: dict[str, dict] = {}
    first, second = (TeamSession(t, db, resources_for=lambda d: cache.setdefault(d, {})) for t in tokens)
    assert first.resource("Organism A") is second.resource("Organism A")  # loaded once per process
    assert TeamSession(tokens[0], db).resource("Organism A") is not first.resource("Organism A")  # default: own
    with pytest.raises(PermissionError, match="no organism 'Organism Z'"):
        first.resource("Organism Z")
