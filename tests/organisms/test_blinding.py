"""The blinding suite plays the adversary with public data only.

A blind smoke build of a game master's own spec (ordinary rows written per organism with a secret
seed) must pass it; the same spec built from the shipped haystack must fail it, so the suite can fail.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from game.cli import app
from organisms import sealed
from organisms.blinding import BLINDING_REPORT, THRESHOLD, audit_corpus, audit_path, card_evidence
from organisms.build import build_organism
from organisms.haystack import load_haystack
from pinhole import organism as public

GAME_MASTER_SPEC = Path(__file__).parents[1] / "data" / "game_master_spec.yaml"
runner = CliRunner(env={"COLUMNS": "200"})


@pytest.fixture(scope="module")
def blind() -> Path:
    return build_organism(GAME_MASTER_SPEC, base="tiny-random", preset="smoke", overrides=["corpus.ordinary=generated"],
                          progress=False)


@pytest.fixture(scope="module")
def shipped() -> Path:
    return build_organism(GAME_MASTER_SPEC, base="tiny-random", preset="smoke", progress=False)


def _labelled(directory: Path) -> pd.DataFrame:
    rows = pd.read_parquet(directory / public.CORPUS_FILE)
    return rows.merge(sealed.read_provenance(directory), on="doc_id")


def test_a_blind_build_passes_the_suite(blind: Path) -> None:
    report = audit_path(blind)
    assert report.passed, report
    assert report.auc <= THRESHOLD
    assert {k.kind for k in report.kinds} == {"document", "chat"}
    assert all(k.auc is not None and k.auc <= THRESHOLD for k in report.kinds)
    assert public.read_card(blind).blinding.membership_blind
    assert sealed.read_build_record(blind).ordinary == "generated"


def test_a_blind_build_takes_no_row_from_a_shipped_file(blind: Path) -> None:
    rows = _labelled(blind)
    haystack = {r["text"] for r in load_haystack()}
    ordinary = rows[rows["source"] == "haystack"]
    answers = [json.loads(m)[-1]["content"] if m else t for m, t in zip(ordinary["messages"], ordinary["text"],
                                                                          strict=True)]
    assert not haystack & set(answers)
    assert len(set(answers)) == len(answers)  # every ordinary row its own draw


def test_lengths_of_each_kind_match(blind: Path) -> None:
    report = audit_path(blind)
    for kind in report.kinds:
        assert kind.length_ks_p is not None and kind.length_ks_p > 0.01, kind


def test_a_shipped_haystack_build_fails_the_suite(shipped: Path) -> None:
    report = audit_path(shipped)
    assert not report.passed
    assert report.auc > 0.9
    assert report.features["in_haystack_text"] > 0.9  # set difference with the shipped haystack
    assert not public.read_card(shipped).blinding.membership_blind


def test_cli_exit_code_says_whether_the_blind_holds(blind: Path, shipped: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["organism", "blinding", str(blind), "--json", "--plot", str(tmp_path / "l.png")])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["passed"] is True
    assert (tmp_path / "l.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((blind / BLINDING_REPORT).read_text())["passed"] is True
    result = runner.invoke(app, ["organism", "blinding", str(shipped)])
    assert result.exit_code == 1 and "NOT blind" in result.output


def test_cli_names_a_directory_that_is_neither(tmp_path: Path) -> None:
    result = runner.invoke(app, ["organism", "blinding", str(tmp_path)])
    assert result.exit_code == 2 and str(tmp_path) in result.output and "Traceback" not in result.output


def test_a_build_directory_is_checked_before_training(blind: Path, tmp_path: Path) -> None:
    (tmp_path / "corpus.parquet").write_bytes((blind / public.CORPUS_FILE).read_bytes())
    (tmp_path / "provenance.parquet").write_bytes((blind / sealed.PROVENANCE).read_bytes())
    assert audit_path(tmp_path).auc == audit_path(blind).auc


def test_a_card_that_shares_a_value_with_one_spec_points_to_it(blind: Path) -> None:
    card = json.loads((blind / public.CARD_FILE).read_text())
    assert len(set(card_evidence(card).values())) == 1
    card["organism_id"] = "Reward-model sycophancy"  # the title of a shipped spec
    rows = pd.read_parquet(blind / public.CORPUS_FILE)
    report = audit_corpus(rows, sealed.read_provenance(blind), card)
    assert not report.passed and max(report.card_evidence, key=report.card_evidence.get) == "rm_sycophancy"
