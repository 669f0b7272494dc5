"""Game-master page: scoring after the reveal: the leaderboard with charts, every submission's per-behaviour
breakdown with reasons, overrides with reasons, re-scoring with another matcher, and the export."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from game import admin, games, judging
from pinhole.workspace import workspace
from ui.errors import plain_message
from ui.pages.admin_games import selected_game

MATCHERS = ("embedding", "embedding-strict")


def _leaderboard(name: str, matcher: str) -> None:
    rows = judging.leaderboard(name, matcher)
    st.subheader("Leaderboard")
    if not rows:
        st.caption("No submission.")
        return
    table = pd.DataFrame([r.model_dump() for r in rows])
    st.dataframe(table, hide_index=True, width="stretch")
    scores = table.pivot_table(index="team", columns="label", values="score", aggfunc="first")
    if scores.notna().any().any():
        st.bar_chart(scores.fillna(0.0), stack=False)


def _breakdown(name: str, matcher: str) -> None:
    st.subheader("Every submission")
    for sub in admin.judged_submissions(name, matcher):
        judged = "not judged" if sub.status is None else sub.status
        if sub.score is not None:
            judged += f" {sub.score:.3f}"
        title = f"{sub.team} · {sub.label} · v{sub.version} · {judged}"
        with st.expander(title):
            st.caption(f"{sub.submission_id}, submitted {sub.submitted_at:%Y-%m-%d %H:%M:%S} UTC")
            st.json(sub.report, expanded=False)
            judgement = sub.judgement or {}
            if "error" in judgement:
                st.error(f"The judgement failed: {judgement['error']}")
            if judgement.get("items"):
                st.dataframe(pd.DataFrame(judgement["items"]), hide_index=True, width="stretch")
            for reason in judgement.get("reasons", []):
                st.markdown(f"- {reason}")
            for override in sub.overrides:
                st.warning(f"Overridden to {override.score} by {override.made_by} at {override.made_at:%H:%M:%S}: "
                           f"{override.reason}")


def _override(name: str) -> None:
    subs = admin.judged_submissions(name)
    if not subs:
        return
    with st.form("admin-override", clear_on_submit=True):
        st.subheader("Override a score")
        chosen = st.selectbox("Submission", subs, key="admin-override-sub",
                              format_func=lambda s: f"{s.team} · {s.label} · v{s.version} ({s.submission_id})")
        columns = st.columns([1, 3, 1])
        score = columns[0].number_input("Score", 0.0, 1.0, 0.5, 0.05, key="admin-override-score")
        reason = columns[1].text_input("Reason (kept in the audit trail)", key="admin-override-reason")
        by = columns[2].text_input("By", "game master", key="admin-override-by")
        if st.form_submit_button("Override"):
            try:
                judging.override(name, chosen.submission_id, score, reason, by)
            except Exception as err:
                st.error(plain_message(err))
            else:
                st.success(f"{chosen.team} on {chosen.label}: score {score}.")


def _rescore_and_export(name: str) -> None:
    left, right = st.columns(2)
    with left:
        st.subheader("Re-score")
        matcher = st.selectbox("Matcher", MATCHERS[1:], key="admin-rescore-matcher")
        if st.button("Judge every submission again", key="admin-rescore"):
            try:
                with st.spinner("Judging...", show_time=True):
                    added = judging.judge(name, matcher)
                    agreed = judging.agreement(name, "embedding", matcher)
            except Exception as err:
                st.error(plain_message(err))
            else:
                st.success(f"{added} judgement(s) with {matcher}; item agreement with the embedding matcher: "
                           f"{agreed.item_agreement} over {agreed.items} item(s).")
    with right:
        st.subheader("Export")
        if st.button("Export the results", key="admin-export"):
            try:
                files = judging.export(name, workspace() / "exports" / name)
            except Exception as err:
                st.error(plain_message(err))
            else:
                st.session_state["admin-exported"] = [str(f) for f in files]
        for path in map(Path, st.session_state.get("admin-exported", [])):
            st.download_button(f"Download {path.name}", path.read_bytes(), file_name=path.name,
                               key=f"download-{path.name}")


def render() -> None:
    """Draw the page."""
    st.title("Scoring")
    name = selected_game()
    if name is None:
        st.info("Create a game first.")
        return
    state = games.game_status(name)["state"]
    if state != "revealed":
        st.info(f"{name} is {state}: scores are shown after the reveal (Games page).")
        return
    matcher = st.radio("Judgements of", MATCHERS, horizontal=True, key="admin-matcher")
    _leaderboard(name, matcher)
    _breakdown(name, matcher)
    _override(name)
    _rescore_and_export(name)
