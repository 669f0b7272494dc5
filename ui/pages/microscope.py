"""Team page (`full` tier): the microscope: text -> features with the text's tokens coloured by a chosen
feature, feature pages (label, density, activation histogram, top contexts with token highlighting, logit
effects, nearest features), the model-diff list and the activation-difference lens, attribution for a chosen
output token, a steering playground, and the logit lens."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from audit_tools.target import Sampling
from audit_tools.text_features import DENSE_DEFAULT, RANKINGS
from ui.evidence import pin_form
from ui.render import show_samples, show_tokens
from ui.tools import kept, run_tool


def _text_features() -> None:
    with st.form("mic-text"):
        text = st.text_area("Text to read", key="mic-text-text")
        columns = st.columns(4)
        chat = columns[0].checkbox("As a user's chat turn", key="mic-text-chat")
        rank_by = columns[1].selectbox("Rank by", list(RANKINGS), key="mic-text-rank")
        top = columns[2].number_input("Features", 1, 200, 20, key="mic-text-top")
        max_density = columns[3].number_input("Max density", 0.0, 1.0, DENSE_DEFAULT, step=0.05, key="mic-text-dense",
                                              help="Features firing on more than this share of tokens are left out.")
        if st.form_submit_button("Find features"):
            run_tool("text_features", "mic-text-run", "Reading the text's features...", text=text, chat=chat,
                     rank_by=rank_by, top=int(top), max_density=float(max_density))
    run = kept("mic-text-run")
    if run is None:
        return
    result = run.result
    if not result.features:
        st.info(f"No feature with density at most {run.arguments['max_density']:g} fires on this text; raise the "
                "max density to see denser ones.")
        return
    st.dataframe(pd.DataFrame([{"feature": f.feature_id, "label": f.label, "density": f.density,
                                "max": f.max_activation, "mean": f.mean_activation, "score": f.score}
                               for f in result.features]), hide_index=True, width="stretch")
    choice = st.selectbox("Colour the tokens by", result.features, key="mic-text-colour",
                          format_func=lambda f: f"#{f.feature_id} {f.label}")
    show_tokens(result.tokens, choice.token_activations)
    if st.button(f"Open the page of feature #{choice.feature_id}", key="mic-text-open"):
        st.session_state["mic-feature-id"] = choice.feature_id
        run_tool("feature_page", "mic-page-run", "Opening the feature page...", feature_id=choice.feature_id)
        st.info("Opened in the Feature pages tab.")
    pin_form(run, "text-features")


def _feature_pages() -> None:
    with st.form("mic-search"):
        columns = st.columns([4, 1])
        query = columns[0].text_input("Search features by label or context words", key="mic-search-query")
        limit = columns[1].number_input("Results", 1, 200, 20, key="mic-search-limit")
        if st.form_submit_button("Search features"):
            run_tool("feature_search", "mic-search-run", "Searching features...", query=query, limit=int(limit))
    found = kept("mic-search-run")
    if found is not None:
        st.dataframe(pd.DataFrame([{"feature": f.feature_id, "label": f.label, "density": f.density, "score": f.score}
                                   for f in found.result]), hide_index=True, width="stretch")
    with st.form("mic-page"):
        feature_id = st.number_input("Feature", 0, 1_000_000, key="mic-feature-id")
        if st.form_submit_button("Open the feature page"):
            run_tool("feature_page", "mic-page-run", "Opening the feature page...", feature_id=int(feature_id))
    run = kept("mic-page-run")
    if run is None:
        return
    page = run.result
    st.subheader(f"Feature #{page.feature_id}: {page.label}")
    columns = st.columns(4)
    columns[0].metric("Density", f"{page.density:.2e}")
    columns[1].metric("Fires on", f"{page.fire_count} tokens")
    columns[2].metric("Max activation", f"{page.max_activation:.3f}")
    columns[3].metric("Mean activation", f"{page.mean_activation:.3f}")
    if page.context_words:
        st.caption("Context words: " + ", ".join(page.context_words))
    st.markdown("**Activation histogram**")
    edges = page.histogram_edges
    st.bar_chart(pd.DataFrame({"activation": [f"{(a + b) / 2:.3g}" for a, b in zip(edges, edges[1:], strict=False)],
                               "tokens": page.histogram_counts[:len(edges) - 1]}), x="activation", y="tokens")
    st.markdown("**Top contexts**")
    for context in page.contexts:
        st.caption(f"`{context.doc_id}` · peak {context.peak_activation:.3f}")
        show_tokens([t.token for t in context.tokens], [t.activation for t in context.tokens], page.max_activation)
    left, middle, right = st.columns(3)
    left.markdown("**Promotes**")
    left.dataframe(pd.DataFrame(page.promoted, columns=["token", "logit"]), hide_index=True)
    middle.markdown("**Suppresses**")
    middle.dataframe(pd.DataFrame(page.suppressed, columns=["token", "logit"]), hide_index=True)
    right.markdown("**Nearest features**")
    right.dataframe(pd.DataFrame([n.model_dump() for n in page.nearest]), hide_index=True)
    pin_form(run, "feature-page")


def _model_diff() -> None:
    st.caption("What the training changed: features that fire more on the organism than on the base, on the "
               "same ordinary texts; and the activation difference read through the unembedding.")
    columns = st.columns(2)
    top = columns[0].number_input("Features / tokens", 5, 100, 20, key="mic-diff-top")
    first_tokens = columns[1].number_input("Lens: first tokens of each text", 1, 64, 5, key="mic-diff-first")
    buttons = st.columns(2)
    if buttons[0].button("Model-diff features", key="mic-diff-go"):
        run_tool("feature_diff", "mic-diff-run", "Comparing the organism with its base...", top=int(top))
    if buttons[1].button("Activation-difference lens", key="mic-lens-go"):
        run_tool("diff_lens", "mic-lens-run", "Reading the activation difference...", top=int(top),
                 first_tokens=int(first_tokens))
    diff = kept("mic-diff-run")
    if diff is not None:
        st.markdown(f"**Features firing more on the organism** ({diff.result.n_texts} texts, "
                    f"{diff.result.n_tokens} tokens)")
        st.dataframe(pd.DataFrame([f.model_dump() for f in diff.result.features]), hide_index=True,
                     width="stretch")
        pin_form(diff, "feature-diff")
    lens = kept("mic-lens-run")
    if lens is not None:
        result = lens.result
        st.markdown(f"**Activation-difference lens** (layer {result.layer}, norm {result.norm:.3f} against a mean "
                    f"residual norm of {result.mean_residual_norm:.3f})")
        left, middle, right = st.columns(3)
        left.dataframe(pd.DataFrame(result.promoted, columns=["promoted", "logit"]), hide_index=True)
        middle.dataframe(pd.DataFrame(result.suppressed, columns=["suppressed", "logit"]), hide_index=True)
        right.dataframe(pd.DataFrame([n.model_dump() for n in result.nearest_features]), hide_index=True)
        st.markdown("**Each position alone** (0: the first readable token of each text)")
        st.dataframe(pd.DataFrame([{"position": p.position, "texts": p.n_texts, "norm": p.norm,
                                    "promotes": " ".join(repr(t) for t, _ in p.promoted),
                                    "nearest feature": f"#{p.nearest_features[0].feature_id} "
                                                       f"{p.nearest_features[0].label}" if p.nearest_features else ""}
                                   for p in result.by_position]), hide_index=True, width="stretch")
        pin_form(lens, "diff-lens")


def _attribution() -> None:
    with st.form("mic-attr"):
        text = st.text_area("Text (the model predicts the next token)", key="mic-attr-text")
        columns = st.columns(3)
        token = columns[0].text_input("Output token (empty: the most likely)", key="mic-attr-token")
        ablate = columns[1].number_input("Features to ablate", 0, 50, 5, key="mic-attr-ablate")
        chat = columns[2].checkbox("As a user's chat turn", key="mic-attr-chat")
        if st.form_submit_button("Attribute"):
            run_tool("attribute", "mic-attr-run", "Attributing...", text=text, target_token=token or None,
                     ablate=int(ablate), chat=chat)
    run = kept("mic-attr-run")
    if run is None:
        return
    result = run.result
    st.markdown(f"Token **{result.target_token!r}**: probability {result.target_probability:.4f}, "
                f"{result.ablated_probability:.4f} with features {result.ablated} ablated "
                f"(a drop of {result.probability_drop:.4f})")
    st.dataframe(pd.DataFrame([f.model_dump() for f in result.features]), hide_index=True, width="stretch")
    pin_form(run, "attribution")


def _steering() -> None:
    with st.form("mic-steer"):
        prompt = st.text_area("Prompt", key="mic-steer-prompt")
        columns = st.columns(4)
        features = columns[0].text_input("Feature ids (comma-separated)", key="mic-steer-features")
        mode = columns[1].selectbox("Mode", ["add", "ablate"], key="mic-steer-mode")
        strength = columns[2].number_input("Strength (0: the default)", 0.0, 100.0, 0.0, key="mic-steer-strength")
        max_new = columns[3].number_input("Max new tokens", 1, 512, 80, key="mic-steer-max-new")
        if st.form_submit_button("Steer"):
            try:
                ids = [int(x) for x in features.replace(" ", "").split(",") if x]
            except ValueError:
                st.error("Feature ids are whole numbers separated by commas.")
            else:
                run_tool("steer", "mic-steer-run", "Generating with and without steering...", prompt=prompt,
                         feature_id=ids, mode=mode, strength=strength or None,
                         sampling=Sampling(max_new_tokens=int(max_new)))
    run = kept("mic-steer-run")
    if run is None:
        return
    left, right = st.columns(2)
    with left:
        st.markdown("**Unsteered**")
        show_samples(run.result.unsteered)
    with right:
        st.markdown(f"**Steered** ({run.result.mode} {run.result.feature_ids}, strength {run.result.strength})")
        show_samples(run.result.steered)
    pin_form(run, "steer")


def _logit_lens() -> None:
    with st.form("mic-lens"):
        text = st.text_area("Text for the logit lens", key="mic-ll-text")
        columns = st.columns(2)
        position = columns[0].number_input("Position (-1: the last token)", -10_000, 10_000, -1, key="mic-ll-pos")
        top = columns[1].number_input("Tokens per layer", 1, 100, 5, key="mic-ll-top")
        if st.form_submit_button("Logit lens"):
            run_tool("logit_lens", "mic-ll-run", "Reading every layer...", text=text, position=int(position),
                     top=int(top))
    run = kept("mic-ll-run")
    if run is None:
        return
    lens = run.result
    st.caption(f"At token {lens.position} of {len(lens.tokens)}: {lens.tokens[lens.position]!r}")
    st.dataframe(pd.DataFrame([{"layer": layer.layer, **{f"#{i + 1}": f"{t!r} {p:.3f}"
                                                         for i, (t, p) in enumerate(layer.tokens)}}
                               for layer in lens.layers]), hide_index=True, width="stretch")
    pin_form(run, "logit-lens")


def render() -> None:
    """Draw the page."""
    st.title("Microscope")
    tabs = st.tabs(["Text → features", "Feature pages", "Model diff", "Attribution", "Steering", "Logit lens"])
    for tab, draw in zip(tabs, (_text_features, _feature_pages, _model_diff, _attribution, _steering, _logit_lens),
                         strict=True):
        with tab:
            draw()
