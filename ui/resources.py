"""Process-wide resources per organism: models, SAEs and indexes load once per server process.

A team's `TeamSession` loads an organism's target, corpus index and microscope lazily into a dict; the
dict handed to every session comes from `st.cache_resource`, keyed by the organism directory, so all
sessions of the process share one copy. A lock per organism serialises the calls that use its models
(switching the adapter on and off is not thread-safe); another serialises the data tools only until the
corpus index is open (so it is built and opened once); after that they run side by side (the index gives each
thread its own cursor, and each SQL query runs in its own worker process). Nothing team-specific is kept here.
"""

from __future__ import annotations

import contextlib
import threading
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import streamlit as st

from game.session import DATA_TOOLS


@st.cache_resource(show_spinner=False, max_entries=64)
def organism_resources(directory: str) -> dict[str, Any]:
    """The shared resource dict of the organism in `directory` (filled by the sessions as tools are used)."""
    return {"directory": Path(directory), "model_lock": threading.Lock(), "data_lock": threading.Lock()}


def lock_for(resource: dict[str, Any], tool: str) -> AbstractContextManager:
    """The lock a call of `tool` holds on this organism's resources (none for a data tool once the index is open:
    the session keeps it under "index")."""
    if tool not in DATA_TOOLS:
        return resource["model_lock"]
    return contextlib.nullcontext() if "index" in resource else resource["data_lock"]
