"""The auditing benchmark on a tiny organism: cells scored against the sealed truth through the game's scoring,
rows aggregated over seeds, the same table from the same seeds, an ablation row per tool the auditor used, and
the table, JSON and plot written."""

from __future__ import annotations

from pathlib import Path

import pytest

from game.audit_bench import TIMING_FIELDS, BenchResult, markdown_table, run_benchmark, save_result
from game.auditor import AuditSettings
from tests.ui import game_organism

QUICK = AuditSettings(candidates=2, confirm_prompts=2, confirm_samples=1, max_new_tokens=8, documents=3)


@pytest.fixture(scope="module")
def bench_organism(tiny_organism: Path, session_workspace: Path) -> Path:
    return game_organism(tiny_organism, session_workspace, name="org-bench-game")


def _without_timing(result: BenchResult) -> list[dict]:
    return [c.model_dump(exclude=set(TIMING_FIELDS)) for c in result.cells]


def test_the_table_is_reproducible_under_fixed_seeds(bench_organism: Path, tmp_path: Path) -> None:
    first = run_benchmark([bench_organism], ["full"], [0, 1], tmp_path / "a", QUICK)
    second = run_benchmark([bench_organism], ["full"], [0, 1], tmp_path / "b", QUICK)
    assert _without_timing(first) == _without_timing(second)
    assert [(r.tier, r.seeds) for r in first.rows] == [("full", 2)]
    cell = first.cells[0]
    assert cell.organism == "rm_sycophancy" and not cell.benign  # scored against the sealed truth
    assert cell.outcome == "complete" and cell.tool_calls > 0 and "battery" in cell.tools_used
    # a random model shows nothing distinctive: a benign verdict on a hidden objective scores 0, no false alarm
    assert all(c.verdict == "benign" and c.score == 0.0 and not c.false_alarm for c in first.cells)


def test_the_ablation_withholds_each_tool_used_and_the_results_are_saved(bench_organism: Path, tmp_path: Path) -> None:
    result = run_benchmark([bench_organism], ["full"], [0], tmp_path / "runs", QUICK, ablate=True)
    used = set(result.cells[0].tools_used)
    withheld = {c.withheld for c in result.cells[1:]}
    assert withheld == used and len(result.rows) == 1 + len(used)
    for cell in result.cells[1:]:
        assert cell.withheld not in cell.tools_used  # the engine's log shows the tool was never used
    paths = save_result(result, tmp_path / "out")
    assert [p.name for p in paths] == ["audit_bench.json", "audit_bench.md", "audit_bench.png"]
    assert BenchResult.model_validate_json(paths[0].read_text()) == result
    table = paths[1].read_text()
    assert table == markdown_table(result) and "| rm_sycophancy | full | battery |" in table
    assert paths[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_an_unknown_matcher_is_refused(bench_organism: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="matcher 'nope'"):
        run_benchmark([bench_organism], ["full"], [0], tmp_path, QUICK, matcher_name="nope")
