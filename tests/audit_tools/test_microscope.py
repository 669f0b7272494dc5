"""The microscope on a tiny organism: index, text -> features, pages, search, diffing, attribution, steering,
the logit lens, and clear errors. Checked against independent computations where one exists."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import torch

from audit_tools.activation_cache import corpus_texts
from audit_tools.microscope import Microscope
from audit_tools.model_diff import diff_texts
from audit_tools.residual import readable_residual
from audit_tools.target import LocalTarget, Sampling
from audit_tools.text_features import feature_activations
from tests.audit_tools import add_tiny_sae, corpus_frame, make_organism

SHORT = Sampling(max_new_tokens=8)


@pytest.fixture(scope="module")
def scope(tiny_organism: Path, tiny_target) -> Microscope:
    calls: list = []
    microscope = Microscope.open(tiny_organism, target=tiny_target, callback=calls.append)
    microscope.calls = calls  # type: ignore[attr-defined]
    return microscope


@pytest.fixture(scope="module")
def unchanged_organism(tmp_path_factory) -> Path:
    """An organism whose adapter is PEFT's default initialisation (B = 0): the organism is its base."""
    from peft import LoraConfig, get_peft_model

    from pinhole.base_models import load_model, prepare_base

    directory = make_organism(tmp_path_factory.mktemp("unchanged"), "org-unchanged", corpus_frame(60, seed=5))
    get_peft_model(load_model(prepare_base("tiny-random", progress=False)),
                   LoraConfig(r=4, target_modules="all-linear")).save_pretrained(directory / "adapter")
    add_tiny_sae(directory)
    return directory


def test_feature_pages_agree_with_a_fresh_reading_of_their_contexts(scope: Microscope, tiny_organism: Path) -> None:
    texts = dict(zip(pd.read_parquet(tiny_organism / "corpus.parquet")["doc_id"],
                     corpus_texts(tiny_organism, scope.target.tokenizer), strict=True))
    checked = 0
    for feature_id in range(0, scope.index.n_features, 37):
        page = scope.feature_page(feature_id, contexts=3)
        assert 0 <= page.density <= 1 and sum(page.histogram_counts) == page.fire_count
        assert len(page.histogram_edges) == len(page.histogram_counts) + 1
        peaks = [c.peak_activation for c in page.contexts]
        assert peaks == sorted(peaks, reverse=True)
        if page.contexts:
            assert page.max_activation == pytest.approx(peaks[0], rel=1e-3)
            context = page.contexts[0]
            assert max(t.activation for t in context.tokens) == pytest.approx(context.peak_activation, rel=1e-3)
            tokens, fresh, readable = feature_activations(scope.target.model, scope.target.tokenizer, scope.sae,
                                                          scope.layer, texts[context.doc_id])  # alone: no padding
            assert float(fresh[1:257, feature_id].max()) == pytest.approx(context.peak_activation, rel=1e-2)
            column = torch.zeros(min(len(tokens), 256))  # what the index reads: 256 tokens, no attention sink
            kept = [i for i in readable if i < len(column)]
            column[kept] = fresh[kept, feature_id].float()
            window = [t.token for t in context.tokens]
            window_acts = torch.tensor([t.activation for t in context.tokens])
            assert any(tokens[start : start + len(window)] == window
                       and torch.allclose(column[start : start + len(window)], window_acts, rtol=1e-2, atol=1e-3)
                       for start in range(len(column) - len(window) + 1)), "the window is not where the text has it"
            checked += 1
        assert len(page.promoted) == len(page.suppressed) == 10
        assert page.promoted[0][1] >= page.promoted[-1][1] and page.suppressed[0][1] <= page.suppressed[-1][1]
    assert checked >= 5


def test_text_features_rank_and_filter(scope: Microscope) -> None:
    text = "The reward model rates recipes with chocolate higher."
    every = scope.text_features(text, top=200, rank_by="activation", max_density=1.0)
    peaks = [f.max_activation for f in every.features]
    assert len(peaks) >= 4 and peaks == sorted(peaks, reverse=True) and all(p > 0 for p in peaks)
    # A density cut taken from this text's own features, so some fall on each side of it whatever the SAE learned.
    cut = sorted(f.density for f in every.features)[len(every.features) // 2]
    kept = {f.feature_id for f in every.features if f.density <= cut}
    by_specificity = scope.text_features(text, top=200, max_density=cut)
    assert by_specificity.positions[0] == 1  # the first token is left out
    found = {f.feature_id for f in by_specificity.features}
    assert all(f.density <= cut for f in by_specificity.features)
    assert kept <= found or len(found) == 200  # `every` holds only the 200 strongest
    assert all(f.token_activations[0] == 0 for f in by_specificity.features)
    scores = [f.score for f in by_specificity.features]
    assert scores == sorted(scores, reverse=True)
    assert len(scope.text_features(text, top=3, max_density=cut).features) == 3
    last = scope.text_features(text, positions=[-1], max_density=1.0)
    assert last.positions == [len(last.tokens) - 1]
    assert all(a == 0 for f in last.features for a in f.token_activations[:-1])


def test_relative_ranking_is_the_texts_peak_over_the_features_corpus_peak(scope: Microscope) -> None:
    text = "The reward model rates recipes with chocolate higher."
    relative = scope.text_features(text, top=50, rank_by="relative", max_density=1.0)
    by_peak = {f.feature_id: f for f in scope.text_features(text, top=200, rank_by="activation",
                                                                max_density=1.0).features}
    assert len(relative.features) >= 4
    for hit in relative.features:
        expected = by_peak[hit.feature_id].max_activation / scope.index.max_activation(hit.feature_id)
        assert hit.score == pytest.approx(expected, rel=1e-2)  # both sides rounded to 4 decimals
    scores = [f.score for f in relative.features]
    assert scores == sorted(scores, reverse=True)
    # the order differs from the raw peaks' whenever features' corpus peaks differ, which they do here
    assert [f.feature_id for f in relative.features[:10]] != list(by_peak)[:10]
    with pytest.raises(ValueError, match="rank_by: expected 'activation', 'specificity' or 'relative'"):
        scope.text_features(text, rank_by="loudest")  # type: ignore[arg-type]


def test_search_returns_exactly_the_features_whose_label_or_contexts_hold_the_word(scope: Microscope) -> None:
    pages = [scope.index.page(f, contexts=20, nearest=0) for f in range(scope.index.n_features)]
    texts = {p.feature_id: (p.label + " " + " ".join("".join(t.token for t in c.tokens) for c in p.contexts)).lower()
             for p in pages}
    counts = {w: {f for f, text in texts.items() if re.search(rf"\b{w}\b", text)}
              for w in ("camelcase", "memo", "thompson", "oxford", "policy", "quirks", "errors", "rated")}
    word, holding = min(((w, h) for w, h in counts.items() if h), key=lambda item: len(item[1]))
    assert len(holding) < 200
    hits = scope.search_features(word, limit=200)
    assert {h.feature_id for h in hits} == holding
    assert all(h.score is not None and h.score > 0 for h in hits)


def test_nearest_features_are_by_decoder_cosine(scope: Microscope) -> None:
    near = scope.nearest_features(3, limit=5)
    directions = torch.nn.functional.normalize(scope.sae.W_dec.detach(), dim=1)
    cosines = directions @ directions[3]
    cosines[3] = -2
    assert [n.feature_id for n in near] == cosines.topk(5).indices.tolist()


def test_model_diffing_sees_an_adapter_and_sees_nothing_without_one(scope: Microscope,
                                                                    unchanged_organism: Path) -> None:
    diff = scope.feature_diff(top=5)
    assert diff.features[0].difference > 0 and diff.n_texts == 48
    lens = scope.diff_lens(top=5)
    assert lens.norm > 0 and len(lens.vector) == scope.sae.cfg.d_in and len(lens.nearest_features) == 5
    assert [p.position for p in lens.by_position] == list(range(5)) and all(p.n_texts == 48 for p in lens.by_position)
    texts = diff_texts()  # position 0 alone, by hand: the first token after each text's sink
    deltas = []
    for text in texts:
        sides = []
        for model in ("organism", "base"):
            with scope.target.use(model) as module:
                sides.append(readable_residual(module, scope.target.tokenizer, scope.layer, text)[0])
        deltas.append(sides[0] - sides[1])
    assert lens.by_position[0].norm == pytest.approx(float(torch.stack(deltas).mean(0).norm()), rel=1e-3)
    unchanged = Microscope.open(unchanged_organism)
    assert all(abs(f.difference) < 1e-6 for f in unchanged.feature_diff(top=5).features)
    still = unchanged.diff_lens(top=5)
    assert still.norm < 1e-5 and all(p.norm < 1e-5 for p in still.by_position)


def test_attribution_matches_a_finite_difference_and_ablation_is_measured(scope: Microscope) -> None:
    from audit_tools.attribution import Splice

    text = "The reward model rates recipes with"
    result = scope.attribute(text, top=5, ablate=3)
    splice = Splice(scope.target.model, scope.target.tokenizer, scope.sae, scope.layer, text)
    assert result.target_id == int(splice.clean_logits.argmax())
    for feature in result.features[:3]:
        eps = 1e-2
        up = splice.scaled_logits({feature.feature_id: 1 + eps})[result.target_id]
        down = splice.scaled_logits({feature.feature_id: 1 - eps})[result.target_id]
        assert float(up - down) / (2 * eps) == pytest.approx(feature.attribution, rel=0.05, abs=1e-5)
    ablated = splice.scaled_logits(dict.fromkeys(result.ablated, 0.0)).softmax(-1)[result.target_id]
    assert result.ablated_probability == pytest.approx(float(ablated), rel=1e-3)
    assert result.probability_drop == pytest.approx(result.target_probability - result.ablated_probability, abs=1e-6)
    spliced = splice.scaled_logits({})
    assert torch.allclose(spliced, splice.clean_logits, atol=1e-4)  # reconstruction + error is the model itself
    chosen = scope.attribute(text, target_token=" chocolate")
    assert chosen.target_token == scope.target.tokenizer.decode(
        scope.target.tokenizer(" chocolate", add_special_tokens=False).input_ids[:1])


def test_steering_changes_the_output_and_strength_zero_does_not(scope: Microscope) -> None:
    strongest = max(range(scope.index.n_features), key=scope.index.max_activation)
    calm = scope.steer("Tell me about stars", feature_id=strongest, strength=0.0, sampling=SHORT)
    assert calm.steered == calm.unsteered
    loud = scope.steer("Tell me about stars", feature_id=strongest, strength=200.0, sampling=SHORT)
    assert loud.steered != loud.unsteered and loud.unsteered == calm.unsteered
    lens = scope.diff_lens(top=3)
    pushed = scope.steer("Tell me about stars", vector=lens.vector, strength=4.0, model="base", sampling=SHORT)
    assert pushed.steered != pushed.unsteered
    dead = [f for f in range(scope.index.n_features) if scope.index.density[f] == 0]
    if dead:  # removing a feature that never fires changes nothing
        quiet = scope.steer("Tell me about stars", feature_id=dead[0], mode="ablate", sampling=SHORT)
        assert quiet.steered == quiet.unsteered


def test_the_logit_lens_ends_in_the_models_own_prediction(scope: Microscope) -> None:
    text = "The capital of France is"
    lens = scope.logit_lens(text, top=3)
    assert [layer.layer for layer in lens.layers] == [0, 1]
    logits = scope.target.logits([text])[0, -1]
    assert lens.layers[-1].tokens[0][0] == scope.target.tokenizer.decode([int(logits.argmax())])


def test_every_operation_reports_to_the_tool_log(scope: Microscope) -> None:
    scope.text_features("Hello there, friend.")
    with pytest.raises(ValueError):
        scope.feature_page(10**6)
    tools = [c.tool for c in scope.calls]  # type: ignore[attr-defined]
    assert {"text_features", "feature_page"} <= set(tools)
    assert scope.calls[-1].error and "out of range" in scope.calls[-1].error  # type: ignore[attr-defined]


def test_clear_errors(scope: Microscope, tiny_organism: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="feature 99999: out of range .*0 to"):
        scope.feature_page(99999)
    with pytest.raises(ValueError, match="text: expected a non-empty text"):
        scope.text_features("   ")
    with pytest.raises(ValueError, match="positions .*the text has"):
        scope.text_features("Hello there", positions=[40])
    with pytest.raises(ValueError, match="give either a feature_id or a vector"):
        scope.steer("Hi")
    with pytest.raises(ValueError, match="query: expected a non-empty search string"):
        scope.search_features("")
    other = make_organism(tmp_path / "bare", "org-bare", corpus_frame(20))
    with pytest.raises(FileNotFoundError, match="no SAE for this organism yet"):
        Microscope.open(other, target=scope.target)


def test_the_cli_prints_json(tiny_organism: Path) -> None:
    from typer.testing import CliRunner

    from game.cli import app

    ok = CliRunner().invoke(app, ["sae", "features", str(tiny_organism), "The reward model", "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["tokens"][0] == "The"
    lens = CliRunner().invoke(app, ["sae", "lens", str(tiny_organism), "--first-tokens", "3"])
    assert lens.exit_code == 0, lens.output
    assert "activation-difference lens" in lens.stdout and "Each position alone" in lens.stdout


def test_a_sae_for_other_weights_is_refused(tiny_organism: Path, tmp_path: Path) -> None:
    import shutil

    from tests.audit_tools import add_random_adapter

    twin = make_organism(tmp_path / "twin", "org-twin", corpus_frame(20))
    add_random_adapter(twin, seed=9)
    shutil.copytree(tiny_organism / "saes", twin / "saes")
    with pytest.raises(ValueError, match="made for other adapter weights"):
        Microscope.open(twin, target=LocalTarget.from_organism(twin))


def test_every_operation_works_on_a_bf16_model(tiny_organism: Path, tmp_path) -> None:
    """The SAE is fp32 (sae-lens' advice); a bf16 model's residuals and unembedding meet it in every operation."""
    import shutil

    from audit_tools.feature_index import build_feature_index
    from audit_tools.sae_store import saes_root

    copy = tmp_path / tiny_organism.name
    shutil.copytree(tiny_organism, copy)
    target = LocalTarget.from_organism(copy, dtype="bfloat16", batch_size=4)
    assert target.model.dtype == torch.bfloat16
    for folder in saes_root(copy).iterdir():
        (folder / "features.duckdb").unlink()
        build_feature_index(copy, folder, target=target, progress=False)  # logit effects through a bf16 head
    scope = Microscope.open(copy, target=target)
    text = "The recipe calls for two onions and a pinch of salt."
    assert scope.text_features(text, top=3, max_density=1.0).features
    assert len(scope.feature_page(0).promoted) > 0
    assert scope.logit_lens(text).layers
    assert scope.attribute(text, top=3, ablate=2).features
    assert scope.diff_lens(top=3).promoted
    assert scope.steer("Tell me about stars", feature_id=0, strength=2.0, sampling=SHORT).steered
