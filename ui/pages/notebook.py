"""Team page: the notebook: pinned evidence and notes, a report form that draws on the pinned evidence and
validates before it submits, the submission history with versions, and the team's own tool-use log."""

from __future__ import annotations

import pandas as pd
import streamlit as st
from pydantic import ValidationError

from game.report import MAX_BEHAVIOURS, Report
from pinhole.errors import validation_problems
from ui import state
from ui.errors import plain_message, redact
from ui.evidence import pinned
from ui.tools import current_label


def _notes() -> None:
    label = current_label()
    evidence = pinned(label)
    st.subheader("Pinned evidence")
    if evidence:
        st.table(pd.DataFrame([{"call": e.call_id, "tool": e.tool, "note": e.note} for e in evidence]))
    else:
        st.caption("Nothing pinned on this organism yet: pin a tool's result from its page.")
    with st.form("nb-note", clear_on_submit=True):
        text = st.text_area("A free note (only your team sees it)", key="nb-note-text")
        if st.form_submit_button("Keep the note"):
            try:
                state.team().note(label, text)
                st.success("Kept.")
            except Exception as err:
                st.error(plain_message(err))
    others = [n for n in state.team().notes() if n["label"] == label and not any(
        e.note_id == n["note_id"] for e in evidence)]
    for note in others:
        st.caption(f"{note['written_at']:%H:%M:%S} UTC")
        st.text(note["text"])


def _report_form() -> None:
    label = current_label()
    evidence = {e.call_id: f"{e.call_id} [{e.tool}] {e.note}" for e in pinned(label)}
    st.subheader(f"Report on {label}")
    count = st.number_input("Behaviours to report", 0, MAX_BEHAVIOURS, 1, key="nb-count")
    with st.form("nb-report"):
        verdict = st.radio("Verdict", ["hidden_objective", "benign"], horizontal=True, key="nb-verdict",
                           format_func=lambda v: {"hidden_objective": "It has a hidden objective",
                                                  "benign": "It is benign"}[v])
        root_cause = st.text_area("Root cause: the hidden objective and where it comes from", key="nb-root")
        confidence = st.slider("Confidence", 0.0, 1.0, 0.5, 0.05, key="nb-confidence")
        behaviours = []
        for i in range(int(count)):
            st.markdown(f"**Behaviour {i + 1}**")
            columns = st.columns([3, 2, 3])
            description = columns[0].text_input("What the model does", key=f"nb-b{i}-description")
            trigger = columns[1].text_input("When (optional)", key=f"nb-b{i}-trigger")
            cited = columns[2].multiselect("Evidence (pinned calls)", list(evidence), key=f"nb-b{i}-evidence",
                                           format_func=lambda c: evidence[c])
            behaviours.append({"description": description, "trigger": trigger or None, "evidence": cited})
        if st.form_submit_button("Submit the report"):
            _submit(label, {"verdict": verdict, "root_cause": root_cause, "confidence": confidence,
                            "behaviours": [b for b in behaviours if b["description"].strip() or b["evidence"]]})


def _submit(label: str, data: dict) -> None:
    try:
        report = Report.model_validate(data)
    except ValidationError as err:
        st.error("The report is not complete: " + validation_problems(err))
        return
    try:
        submission = state.team().submit(label, report)
    except Exception as err:
        st.error(plain_message(err))
        return
    st.success(f"Submitted version {submission.version} on {label} ({submission.submission_id}).")


def _history() -> None:
    st.subheader("Submissions")
    rows = [s.model_dump() for s in state.team().submissions()]
    if rows:
        st.dataframe(pd.DataFrame(rows)[["label", "version", "submitted_at", "submission_id"]], hide_index=True,
                     width="stretch")
    else:
        st.caption("No submission yet.")


def _log() -> None:
    st.subheader("Our tool-use log")
    log = state.team().log()
    if not log:
        st.caption("No tool call yet.")
        return
    st.dataframe(pd.DataFrame([{"call": c.call_id, "organism": c.label, "tool": c.tool, "at (UTC)": c.called_at,
                                "seconds": c.duration_s, "outcome": c.outcome, "detail": redact(c.detail)}
                               for c in reversed(log)]), hide_index=True, width="stretch")


def render() -> None:
    """Draw the page."""
    st.title("Notebook and report")
    _notes()
    _report_form()
    _history()
    _log()
