"""Who is logged in, per browser session: a team (its `TeamSession`) or the game master. Nothing else.

Tokens come from the login form only (never from the URL) and are not kept: a team's session keeps its
`TeamSession`, the game master's keeps a flag. Everything lives in `st.session_state`, which is per browser
session; a reload logs out.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from game import admin
from game.session import OrganismAccess, TeamSession
from ui.resources import organism_resources

TEAM, ADMIN, ACCESS = "pinhole_team", "pinhole_admin", "pinhole_access"


def login_team(token: str) -> TeamSession:
    """Log a team in (PermissionError for a wrong or revoked token)."""
    if not token.strip():
        raise PermissionError("enter your team's token")
    session = TeamSession(token.strip(), resources_for=organism_resources)  # models load once per process
    logout()
    st.session_state[ACCESS] = session.organisms()
    st.session_state[TEAM] = session
    return session


def login_admin(token: str) -> None:
    """Log the game master in (PermissionError for a wrong token)."""
    admin.check_admin_token(token)
    logout()
    st.session_state[ADMIN] = True


def logout() -> None:
    """Forget who is logged in, and every page's state."""
    for key in list(st.session_state.keys()):
        del st.session_state[key]


def team() -> TeamSession | None:
    """The logged-in team's session, if a team is logged in."""
    return st.session_state.get(TEAM)


def is_admin() -> bool:
    """Whether the game master is logged in."""
    return bool(st.session_state.get(ADMIN))


def access() -> list[OrganismAccess]:
    """The team's organisms with its tier and tools on each (read at login)."""
    return st.session_state.get(ACCESS, [])


def shared_resource(label: str) -> dict[str, Any]:
    """The process-wide resource dict of the logged-in team's organism `label`."""
    session = team()
    if session is None:
        raise PermissionError("no team is logged in")
    return session.resource(label)
