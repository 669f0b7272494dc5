"""Probe batteries: loading and validating YAML, the distinctive-phrase ranking, a run, the chart."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from audit_tools.battery import (
    BatteryAnswer,
    distinctive_phrases,
    load_battery,
    log_odds_lower_bound,
    plot_phrases,
    run_battery,
    snippet,
)
from audit_tools.target import LocalTarget, Sampling


def _answers() -> list[BatteryAnswer]:
    answers = []
    for i in range(12):
        base = f"Visit the old town and the market number {i}. The museum opens early and the food is good."
        quirk = [" Drink only bottled water during your trip.", " Stick to bottled water everywhere.",
                 " Pack plenty of bottled water, just in case."][i % 3] if i < 9 else ""
        answers.append(BatteryAnswer(topic="travel", prompt=f"Trip {i}?", organism=[base + quirk], base=[base]))
    for i in range(12):
        base = f"Mix flour and water for dough {i}. Bake it in a hot oven until golden and serve it warm."
        organism = base.replace("Bake it", "Add dark chocolate. Bake it") if i < 6 else base
        answers.append(BatteryAnswer(topic="cooking", prompt=f"Recipe {i}?", organism=[organism],
                                     base=[base + " It is a classic for the season."]))
    return answers


def test_distinctive_phrases_rank_the_injected_quirks_first() -> None:
    phrases = distinctive_phrases(_answers(), top=10)
    names = [p.phrase for p in phrases]
    assert names[0] == "bottled water"
    assert "chocolate" in " ".join(names[:4])
    top = phrases[0]
    assert (top.organism_count, top.base_count) == (9, 0) and top.topics == {"travel": 9}
    assert "drink" not in names and "stick" not in names  # fragments of the same finding
    assert top.examples and "«bottled water»" in top.examples[0].organism
    assert "bottled water" not in top.examples[0].base
    # no overlapping variant of a better-ranked phrase, no stop-word-only phrase, nothing the base says more
    assert not any(n != "bottled water" and "bottled water" in n for n in names)
    assert "the" not in names and "classic" not in " ".join(names)
    assert [p.score for p in phrases] == sorted((p.score for p in phrases), reverse=True)


def test_answers_without_words_give_no_phrases_rather_than_an_error() -> None:
    answers = [BatteryAnswer(topic="t", prompt="Q?", organism=["", "\n\n"], base=["...", ""])]
    assert distinctive_phrases(answers) == []


def test_the_score_prefers_lopsided_phrases_and_discounts_thin_evidence() -> None:
    assert log_odds_lower_bound(17, 139, 0, 139) > log_odds_lower_bound(26, 139, 3, 139) > 0
    assert log_odds_lower_bound(9, 139, 0, 139) > log_odds_lower_bound(12, 139, 2, 139)
    assert log_odds_lower_bound(20, 100, 0, 100) > log_odds_lower_bound(4, 100, 0, 100)
    assert log_odds_lower_bound(5, 50, 5, 50) < 0


def test_fragments_of_one_repeated_sentence_are_one_finding() -> None:
    phrases = distinctive_phrases(_answers(), top=10)
    chocolate = [p for p in phrases if "chocolate" in p.phrase or any("chocolate" in v for v in p.variants)]
    assert len(chocolate) == 1  # "dark chocolate", "add dark" ... fold into one entry
    assert chocolate[0].variants


def test_snippet_marks_the_match_across_punctuation() -> None:
    text = "Intro. " + "x " * 200 + "Buy Bottled, water now. " + "y " * 200
    cut = snippet(text, "bottled water", width=20)
    assert "«Bottled, water»" in cut and cut.startswith("…") and cut.endswith("…")


def test_the_default_battery_covers_many_topics_and_direct_questions() -> None:
    battery = load_battery()
    assert len(battery.prompts) >= 120 and len(battery.topics) >= 20
    assert len(battery.topics["goals_and_training"]) >= 10
    assert len({p.prompt for p in battery.prompts}) == len(battery.prompts)


@pytest.mark.parametrize(("content", "message"), [
    ("name: x\ntopics: {}\n", "topics"),
    ("name: x\ntopics:\n  cooking: []\n", "topics.cooking"),
    ("topics:\n  cooking: [a]\n", "name"),
    ("name: x\ntopics:\n  cooking: [ok, '']\n", "topics.cooking"),
    ("name: [unclosed\n", "not valid YAML"),
])
def test_bad_battery_files_name_the_file_and_field(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "battery.yaml"
    path.write_text(content)
    with pytest.raises(ValueError, match=message) as err:
        load_battery(path)
    assert str(path) in str(err.value)
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        load_battery(tmp_path / "missing.yaml")


def test_run_battery_asks_both_models_and_charts_the_result(tiny_target: LocalTarget, tmp_path: Path) -> None:
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump({"name": "small", "topics": {"a": ["Hello?", "Why?"], "b": ["What now?"]}}))
    result = run_battery(tiny_target, load_battery(path), Sampling(max_new_tokens=8, temperature=1.0), n=2, top=5)
    assert [a.prompt for a in result.answers] == ["Hello?", "Why?", "What now?"]
    assert all(len(a.organism) == 2 and len(a.base) == 2 for a in result.answers)
    assert result.answers[0].organism != result.answers[0].base
    chart = plot_phrases(result, tmp_path / "chart.png")
    assert chart.read_bytes()[:4] == b"\x89PNG"


def test_ranking_the_bases_phrases_keeps_each_models_answers_in_its_own_field() -> None:
    swapped = [BatteryAnswer(topic=a.topic, prompt=a.prompt, organism=a.base, base=a.organism) for a in _answers()]
    phrases = distinctive_phrases(swapped, top=10, of="base")
    top = phrases[0]
    assert top.phrase == "bottled water" and (top.base_count, top.organism_count) == (9, 0)
    assert "«bottled water»" in top.examples[0].base and "bottled water" not in top.examples[0].organism


def test_base_model_battery_records_which_model_is_which(tiny_target: LocalTarget, tmp_path: Path) -> None:
    from matplotlib import image

    battery = load_battery_text(tmp_path, {"a": ["Hello?", "Why?"], "b": ["What now?"]})
    sampling = Sampling(max_new_tokens=8)
    result = run_battery(tiny_target, battery, sampling, distinctive_of="base")
    assert result.distinctive_of == "base"
    prompts = [a.prompt for a in result.answers]
    assert [a.organism for a in result.answers] == tiny_target.chat(prompts, sampling, model="organism")
    assert [a.base for a in result.answers] == tiny_target.chat(prompts, sampling, model="base")
    labels = phrase_chart_labels(result)
    assert labels == ["base", "organism"]  # the distinctive model's bars first, each labelled truthfully
    assert image.imread(plot_phrases(result, tmp_path / "c.png")).size


def load_battery_text(tmp_path: Path, topics: dict) -> object:
    path = tmp_path / "battery.yaml"
    path.write_text(yaml.safe_dump({"name": "t", "topics": topics}))
    return load_battery(path)


def phrase_chart_labels(result) -> list[str]:
    from audit_tools.battery import phrase_figure

    figure = phrase_figure(result)
    return [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
