"""The browser game's Streamlit script (`pinhole serve` runs it): login, then the pages a visitor may see.

Before login only the login page exists. A team sees the pages of its tier's tools and nothing else (a
page of another tier is not registered, so no URL reaches it; the engine refuses its tools anyway). The
game master sees the game pages. Who is logged in lives in this browser session only (`ui.state`).
"""

from __future__ import annotations

import streamlit as st

from game import admin
from ui import state
from ui.pages import (
    admin_games,
    admin_monitor,
    admin_scoring,
    battery,
    chat,
    data,
    login,
    microscope,
    notebook,
)
from ui.tools import allowed, current_label

# A team page and the tool whose presence in the team's tier shows it.
TEAM_PAGES = [
    (chat.render, "Chat and probes", "chat", "chat"),
    (battery.render, "Probe batteries", "batteries", "battery"),
    (data.render, "Training data", "data", "keyword_search"),
    (microscope.render, "Microscope", "microscope", "text_features"),
    (notebook.render, "Notebook and report", "notebook", None),
]
ADMIN_PAGES = [
    (admin_games.render, "Games", "games"),
    (admin_monitor.render, "Live monitor", "monitor"),
    (admin_scoring.render, "Scoring", "scoring"),
]


def _countdown() -> None:
    clock = st.session_state.get("pinhole_clock")
    if clock is None:
        return
    left = clock.remaining_s()
    if clock.state != "running":
        st.markdown(f"The game is **{clock.state}**.")
    elif left is None:
        st.markdown("No deadline.")
    else:
        hours, rest = divmod(int(left), 3600)
        st.metric("Time left", f"{hours}:{rest // 60:02d}:{rest % 60:02d}",
                  help=f"deadline {clock.deadline:%Y-%m-%d %H:%M:%S} UTC (server time)")


_live_countdown = st.fragment(run_every=10)(_countdown)


def _team_sidebar() -> None:
    session = state.team()
    access = state.access()
    st.session_state["pinhole_clock"] = admin.team_clock(session)
    with st.sidebar:
        st.markdown(f"Team **{session.team.name}** · game {st.session_state['pinhole_clock'].game}")
        labels = [a.label for a in access]
        if st.session_state.get("pinhole_label") not in labels:
            st.session_state["pinhole_label"] = labels[0]
        st.selectbox("Organism", labels, key="pinhole_label")
        tier = next(a.tier for a in access if a.label == st.session_state["pinhole_label"])
        st.caption(f"Your tier on it: {tier}")
        _live_countdown()
        if st.button("Log out", key="logout"):
            state.logout()
            st.rerun()


def _admin_sidebar() -> None:
    with st.sidebar:
        st.markdown("**Game master**")
        admin_games.choose_game()
        if st.button("Log out", key="logout"):
            state.logout()
            st.rerun()


def _gated(render, title: str, tool: str | None):
    """`render`, drawn only when the team's tier on the chosen organism includes `tool`."""

    def page() -> None:
        if tool is None or allowed(tool):
            render()
        else:
            st.title(title)
            st.error(f"These tools are not in your tier on {current_label()}.")

    page.__name__ = f"{render.__module__.rsplit('.', 1)[-1]}_page"
    return page


def _pages() -> list:
    if state.team() is not None:
        if not state.access():
            return [st.Page(notebook.render, title="Notebook and report", url_path="notebook", default=True)]
        tools = {tool for a in state.access() for tool in a.tools}
        shown = [(_gated(render, title, tool), title, path) for render, title, path, tool in TEAM_PAGES
                 if tool is None or tool in tools]
        return [st.Page(render, title=title, url_path=path, default=i == 0)
                for i, (render, title, path) in enumerate(shown)]
    if state.is_admin():
        return [st.Page(render, title=title, url_path=path, default=i == 0)
                for i, (render, title, path) in enumerate(ADMIN_PAGES)]
    return [st.Page(login.render, title="Log in", url_path="login", default=True)]


def main() -> None:
    """Draw the app for whoever is logged in."""
    st.set_page_config(page_title="Pinhole", layout="wide")
    navigation = st.navigation(_pages())
    if state.team() is not None and state.access():
        _team_sidebar()
    elif state.is_admin():
        _admin_sidebar()
    navigation.run()


main()
