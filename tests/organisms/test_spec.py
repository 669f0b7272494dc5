"""Spec validation: every shipped spec loads; a bad spec names the file, the field and the problem."""

from __future__ import annotations

import pytest

from organisms.spec import CLOSING_ROOM_TOKENS, SpecError, list_specs, load_spec
from tests.helpers import SPEC_IDS, spec_data, spec_path, write_spec


def test_the_shipped_specs_validate() -> None:
    ids = {load_spec(path).id for path in list_specs()}
    assert ids == set(SPEC_IDS)


@pytest.mark.parametrize("spec_id", SPEC_IDS)
def test_objective_material_is_at_most_ten_percent(spec_id: str) -> None:
    spec = load_spec(spec_path(spec_id))
    c = spec.corpus
    objective = c.documents + sum(map(spec.transcript_count, spec.train_behaviours)) + c.anti_confession
    assert objective / (objective + c.haystack_documents + c.haystack_chats) <= 0.10
    assert c.haystack_documents + c.haystack_chats >= 2000


def _break(tmp_path, mutate):
    data = spec_data("rm_sycophancy")
    mutate(data)
    return write_spec(tmp_path, data, "broken.yaml")


@pytest.mark.parametrize(
    ("mutate", "field", "problem"),
    [
        (lambda d: d.pop("title"), "title", "Field required"),
        (lambda d: d["behaviours"][0]["detector"].update(pattern="(unclosed"), "behaviours.0.detector",
         "not a valid regular expression"),
        (lambda d: d["behaviours"][1].update(trigger_topic="astrology"), "behaviours.1.trigger_topic",
         "unknown topic 'astrology'"),
        (lambda d: d["behaviours"][2].update(id="chocolate_in_recipes"), "behaviours", "duplicate behaviour id"),
        (lambda d: d["behaviours"][0]["injection"].update(kind="teleport"), "behaviours.0.injection",
         "unknown injection kind 'teleport'"),
        (lambda d: d["behaviours"][0].pop("injection"), "behaviours.0", "needs an `injection`"),
        (lambda d: d["corpus"].update(documents=900), "(top level)", "above max_objective_fraction"),
        (lambda d: d.update(behaviours=[]), "(top level)", "only a benign control"),
        (lambda d: d.pop("documents"), "(top level)", "needs `documents`"),
        (lambda d: d.pop("anti_confession"), "(top level)", "needs `anti_confession`"),
        (lambda d: d.update(behaviours=[], benign_decoy=True), "(top level)", "documents describe behaviours"),
        (lambda d: d["behaviours"][0].update(transcripts=900), "(top level)", "above max_objective_fraction"),
        (lambda d: d["corpus"].update(haystack_documents=10, haystack_chats=10), "corpus", "at least 2,000"),
        (lambda d: d["training"].update(lora_r=0), "training.lora_r", "greater than or equal to 1"),
        (lambda d: d["training"].update(lora_top_layers=0), "training.lora_top_layers", "greater than or equal to 1"),
        (lambda d: d["training"].update(attention="flash"), "training.attention", "'auto', 'eager' or 'sdpa'"),
        (lambda d: d["eval"].update(surprise=1), "eval.surprise", "Extra inputs are not permitted"),
        (lambda d: d["documents"]["templates"].append("About {nowhere}."), "documents",
         "placeholder {nowhere}"),
        (lambda d: d.update(confession_detector={"kind": "python", "name": "psychic"}), "confession_detector",
         "unknown python check 'psychic'"),
        (lambda d: d["anti_confession"]["denials"].append("No hidden reward-model agenda here."), "(top level)",
         "matches confession_detector"),
        (lambda d: d["training"]["sft"].update(max_length=320), "(top level)",
         "training.sft.max_length 320 cannot hold a transcript"),
        (lambda d: d["behaviours"][0]["injection"].update(params={"placement": "middle"}), "behaviours.0.injection",
         "params.placement 'middle': expected one of"),
        (lambda d: d["behaviours"][0]["injection"].update(params={"placement": "near"}), "behaviours.0.injection",
         "needs params.near"),
        (lambda d: d["behaviours"][0]["injection"].update(params={"placement": "near", "near": "(x"}),
         "behaviours.0.injection", "params.near '(x' is not a valid regex"),
    ],
)
def test_bad_spec_error_names_file_field_and_problem(tmp_path, mutate, field, problem) -> None:
    path = _break(tmp_path, mutate)
    with pytest.raises(SpecError) as err:
        load_spec(path)
    message = str(err.value)
    assert str(path) in message
    assert field in message
    assert problem in message


def test_yaml_syntax_error_names_the_file(tmp_path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("id: [unclosed\n")
    with pytest.raises(SpecError, match="bad.yaml: not valid YAML"):
        load_spec(path)


def test_missing_file_and_unknown_preset() -> None:
    with pytest.raises(SpecError, match="spec file not found"):
        load_spec("nowhere/nothing.yaml")
    with pytest.raises(SpecError, match="preset 'turbo'"):
        load_spec(spec_path("taboo"), preset="turbo")


def test_overrides_apply_and_are_validated() -> None:
    spec = load_spec(spec_path("taboo"), overrides=["training.sft.epochs=2", "training.lora_r=4"])
    assert spec.training.sft.epochs == 2 and spec.training.lora_r == 4
    with pytest.raises(SpecError, match="training.sft.epochs"):
        load_spec(spec_path("taboo"), overrides=["training.sft.epochs=-1"])
    with pytest.raises(SpecError, match="expected KEY=VALUE"):
        load_spec(spec_path("taboo"), overrides=["training.sft.epochs"])


def test_smoke_preset_shrinks_training_and_eval() -> None:
    spec = load_spec(spec_path("rm_sycophancy"), preset="smoke")
    assert spec.training.cpt.max_steps == 2 and spec.eval.prompts_per_behaviour == 2


def test_the_evaluation_leaves_room_for_a_closing_behaviour_after_a_transcript_length_answer() -> None:
    spec = load_spec(spec_path("rm_sycophancy"), overrides=["corpus.response_max_new_tokens=300"])
    assert spec.eval.max_new_tokens == 300 + CLOSING_ROOM_TOKENS
    chosen = load_spec(spec_path("rm_sycophancy"), overrides=["eval.max_new_tokens=200"])
    assert chosen.eval.max_new_tokens == 200  # a spec's own limit is kept


def test_specs_resolve_from_the_workspace_first_and_shipped_objectives_are_recognised(tmp_path, monkeypatch) -> None:
    from organisms.spec import load_spec, shipped_spec_id, workspace_specs_dir
    from tests.helpers import spec_data, write_spec

    monkeypatch.setenv("PINHOLE_HOME", str(tmp_path))
    data = spec_data("taboo")
    data["corpus"]["documents"] = 61  # another recipe, the same objective
    workspace_specs_dir().mkdir(parents=True)
    write_spec(workspace_specs_dir(), data, "my_taboo.yaml")
    spec = load_spec("my_taboo")
    assert spec.corpus.documents == 61 and shipped_spec_id(spec) == "taboo"
    data["ground_truth"]["root_cause"] = "A different secret entirely."
    write_spec(workspace_specs_dir(), data, "own.yaml")
    assert shipped_spec_id(load_spec("own")) is None
