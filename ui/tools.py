"""Running a team's tool from a page: through its `TeamSession`, with progress shown and errors in plain words.

Each result is kept in the browser session under a page's key with the id of the logged call, so that
reruns keep showing it and the team can pin it as evidence.
"""

from __future__ import annotations

from typing import Any

import streamlit as st
from pydantic import BaseModel, ConfigDict

from game import admin, games
from ui import state
from ui.errors import plain_message
from ui.resources import lock_for


class ToolRun(BaseModel):
    """One call a page made, and what came back."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    label: str
    tool: str
    arguments: dict[str, Any]
    call_id: str | None
    result: Any


def current_label() -> str:
    """The organism the team is auditing (chosen in the sidebar)."""
    return st.session_state["pinhole_label"]


def run_tool(tool: str, key: str, progress: str, **arguments: Any) -> ToolRun | None:
    """Call `tool` on the current organism, keep the result under `key`, show an error plainly (None then)."""
    session, label = state.team(), current_label()
    resource = state.shared_resource(label)
    since = games.now()
    with st.spinner(progress, show_time=True):
        try:
            with lock_for(resource, tool):
                result = session.call(label, tool, **arguments)
        except Exception as err:  # every failure is shown in plain words (and logged by the session)
            st.session_state.pop(key, None)
            st.error(plain_message(err))
            return None
    run = ToolRun(label=label, tool=tool, arguments=arguments, result=result,
                  call_id=admin.latest_call_id(session, label, tool, since))
    st.session_state[key] = run
    return run


def kept(key: str) -> ToolRun | None:
    """The result a page kept under `key`, if it is for the current organism."""
    run = st.session_state.get(key)
    return run if run is not None and run.label == current_label() else None


def allowed(tool: str) -> bool:
    """Whether the team's tier on the current organism includes `tool`."""
    return any(a.label == current_label() and tool in a.tools for a in state.access())
