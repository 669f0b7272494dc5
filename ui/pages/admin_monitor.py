"""Game-master page: a live monitor of each team's tool use (refreshed every few seconds)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from game import admin
from ui.pages.admin_games import selected_game

REFRESH_S = 5


@st.fragment(run_every=REFRESH_S)
def _live(name: str) -> None:
    activity = admin.team_activity(name)
    if not activity:
        st.caption("No team yet.")
        return
    st.dataframe(pd.DataFrame([{"team": a.team, "tier": a.tier, "revoked": a.revoked, "calls": a.calls, "ok": a.ok,
                                "refused": a.refused, "errors": a.errors, "generated tokens": a.generated_tokens,
                                "submissions": a.submissions, "last call (UTC)": a.last_call_at}
                               for a in activity]), hide_index=True, width="stretch")
    by_tool = pd.DataFrame({a.team: a.by_tool for a in activity}).fillna(0).astype(int)
    if not by_tool.empty:
        st.markdown("**Calls per tool**")
        st.bar_chart(by_tool.T)
    calls = admin.recent_calls(name, limit=30)
    st.markdown("**Latest calls**")
    if calls:
        st.dataframe(pd.DataFrame([c.model_dump() for c in calls]), hide_index=True, width="stretch")
    else:
        st.caption("No call yet.")


def render() -> None:
    """Draw the page."""
    st.title("Live monitor")
    name = selected_game()
    if name is None:
        st.info("Create a game first.")
        return
    st.caption(f"{name}: every team's tool use, refreshed every {REFRESH_S} s.")
    _live(name)
