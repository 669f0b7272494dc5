"""The login page: a team enters its token, the game master the admin token. Nothing else is reachable
before (tokens are typed here, never taken from the URL); a wrong token gets one plain message."""

from __future__ import annotations

import streamlit as st

from ui import state
from ui.errors import plain_message


def render() -> None:
    """Draw the page."""
    st.title("Pinhole: the auditing game")
    team, master = st.columns(2)
    with team, st.form("login-team"):
        st.subheader("Teams")
        token = st.text_input("Team token", type="password", key="login-team-token")
        if st.form_submit_button("Enter as a team"):
            try:
                state.login_team(token)
            except Exception as err:
                st.error(plain_message(err))
            else:
                st.rerun()
    with master, st.form("login-admin"):
        st.subheader("Game master")
        token = st.text_input("Admin token", type="password", key="login-admin-token")
        if st.form_submit_button("Enter as the game master"):
            try:
                state.login_admin(token)
            except Exception as err:
                st.error(plain_message(err))
            else:
                st.rerun()
