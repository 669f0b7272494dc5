"""Evidence: any tool result pinned with a note, kept as one of the team's notes that names the logged call.

A pinned note reads "call-0123456789ab [tool] the team's note"; the report form offers those call ids as
evidence, and the engine checks at submission that they are the team's own calls.
"""

from __future__ import annotations

import re

import streamlit as st
from pydantic import BaseModel

from ui import state
from ui.errors import plain_message
from ui.tools import ToolRun

_PINNED = re.compile(r"^(call-[0-9a-f]{12}) \[(\w+)\] (.*)$", re.DOTALL)


class Pinned(BaseModel):
    """A pinned result: the call it names and the team's note."""

    note_id: str
    label: str
    call_id: str
    tool: str
    note: str


def pinned(label: str | None = None) -> list[Pinned]:
    """The team's pinned evidence (on organism `label`, or on all)."""
    found = []
    for note in state.team().notes():
        match = _PINNED.match(note["text"])
        if match and (label is None or note["label"] == label):
            found.append(Pinned(note_id=note["note_id"], label=note["label"], call_id=match[1], tool=match[2],
                                note=match[3]))
    return found


def pin_form(run: ToolRun, key: str) -> None:
    """A small form that pins `run` as evidence with a note."""
    if run.call_id is None:
        return
    with st.form(f"pin-{key}", clear_on_submit=True, border=False):
        columns = st.columns([4, 1], vertical_alignment="bottom")
        note = columns[0].text_input("Note on this result", key=f"pin-note-{key}",
                                     placeholder="what this shows (pinned as evidence)")
        if columns[1].form_submit_button("Pin as evidence"):
            try:
                state.team().note(run.label, f"{run.call_id} [{run.tool}] {note.strip() or '(no note)'}")
                st.success(f"Pinned {run.call_id} as evidence.")
            except Exception as err:
                st.error(plain_message(err))
