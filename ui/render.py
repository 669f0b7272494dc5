"""Rendering helpers shared by the pages: highlighted snippets, tokens coloured by activation, samples.

Text from models and corpora is escaped before any markup is added, so it can never inject HTML.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import streamlit as st

from audit_tools.corpus_index import MARK_CLOSE, MARK_OPEN


def highlighted(snippet: str) -> str:
    """A search snippet as HTML, its «matches» marked."""
    return html.escape(snippet).replace(MARK_OPEN, "<mark>").replace(MARK_CLOSE, "</mark>")


def show_snippet(snippet: str) -> None:
    """Show a snippet with its matches highlighted."""
    st.markdown(f'<div class="ph-snippet">{highlighted(snippet)}</div>', unsafe_allow_html=True)


def coloured_tokens(tokens: Sequence[str], activations: Sequence[float], scale: float | None = None) -> str:
    """Tokens as HTML spans shaded by activation (the strongest, or `scale`, fully shaded); hover for values."""
    top = scale if scale and scale > 0 else max((a for a in activations if a > 0), default=0.0)
    spans = []
    for token, value in zip(tokens, activations, strict=True):
        alpha = min(1.0, value / top) if top > 0 and value > 0 else 0.0
        text = html.escape(token).replace("\n", "↵")
        spans.append(f'<span title="{value:.3f}" style="background: rgba(255, 140, 0, {alpha:.2f}); '
                     f'padding: 1px 0; border-radius: 2px">{text}</span>')
    return '<div class="ph-tokens" style="line-height: 1.9; white-space: pre-wrap">' + "".join(spans) + "</div>"


def show_tokens(tokens: Sequence[str], activations: Sequence[float], scale: float | None = None) -> None:
    """Show tokens shaded by activation."""
    st.markdown(coloured_tokens(tokens, activations, scale), unsafe_allow_html=True)


def show_samples(samples: Sequence[str], prefix: str = "") -> None:
    """Show a model's samples (after `prefix`, which is shown in bold), one per block."""
    for i, sample in enumerate(samples):
        if len(samples) > 1:
            st.caption(f"sample {i + 1}")
        body = html.escape(sample).replace("\n", "<br>")
        lead = f"<b>{html.escape(prefix)}</b>" if prefix else ""
        st.markdown(f'<div class="ph-sample">{lead}{body}</div>', unsafe_allow_html=True)
