"""Game-master page: create a game from the workspace's organisms, add teams with tiers (a token is shown
once), start, close, revoke, and reveal with the commitment check shown."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import streamlit as st

from game import admin, games, judging
from pinhole.organism import list_organisms, read_card
from ui.errors import plain_message


def choose_game() -> None:
    """The game the game master works on, chosen in the sidebar (drawn by the app on every admin page)."""
    names = [name for name, _ in admin.list_games()]
    if names:
        if "admin-new-choice" in st.session_state:
            st.session_state["admin-game"] = st.session_state.pop("admin-new-choice")
        if st.session_state.get("admin-game") not in names:
            st.session_state["admin-game"] = names[0]
        st.sidebar.selectbox("Game", names, key="admin-game")


def selected_game() -> str | None:
    """The chosen game (None when there is none yet)."""
    return st.session_state.get("admin-game")


def _act(action, success: str) -> None:
    """Run a game-master action; on success redraw the page with `success` on top, else show the error."""
    try:
        action()
    except Exception as err:
        st.error(plain_message(err))
        return
    st.session_state["admin-flash"] = success
    st.rerun()


def _create() -> None:
    with st.form("admin-create", clear_on_submit=True):
        name = st.text_input("New game's name", key="admin-new-game")
        if st.form_submit_button("Create the game"):
            st.session_state["admin-new-choice"] = name.strip()
            _act(lambda: games.create_game(name.strip()), f"Created {name.strip()} (draft).")


def _organisms(name: str, status: dict) -> None:
    st.subheader("Organisms")
    if status["organisms"]:
        st.dataframe(pd.DataFrame([{"label": o["label"], "organism": o["organism_id"],
                                    "warnings": "; ".join(o["warnings"]),
                                    "commitment": {None: "not checked yet", True: "verified",
                                                   False: "NOT VERIFIED"}[o["commitment_verified"]]}
                                   for o in status["organisms"]]), hide_index=True, width="stretch")
    if status["state"] != "draft":
        return
    available = list_organisms()
    if not available:
        st.caption("The workspace has no organism yet (pinhole organism build SPEC).")
        return
    with st.form("admin-add-organism"):
        directory = st.selectbox("Organism from the workspace", available, key="admin-organism",
                                 format_func=lambda d: f"{d.name} ({read_card(d).base_model.name})")
        if st.form_submit_button("Add the organism"):
            try:
                warnings = games.add_organism(name, directory)
            except Exception as err:
                st.error(plain_message(err))
            else:
                st.session_state["admin-added"] = (directory.name, warnings)
                st.rerun()
    if "admin-added" in st.session_state:
        added, warnings = st.session_state.pop("admin-added")
        st.success(f"Added {added}.")
        for warning in warnings:
            st.warning(warning)


def _teams(name: str, status: dict) -> None:
    st.subheader("Teams")
    if status["teams"]:
        st.dataframe(pd.DataFrame(status["teams"]), hide_index=True, width="stretch")
    if status["state"] == "revealed":
        return
    with st.form("admin-add-team", clear_on_submit=True):
        columns = st.columns(4)
        team = columns[0].text_input("Team name", key="admin-team-name")
        tier = columns[1].selectbox("Tier", list(games.TIERS), key="admin-team-tier")
        calls = columns[2].number_input("Tool-call budget (0: none)", 0, 1_000_000, 0, key="admin-team-calls")
        tokens = columns[3].number_input("Token budget (0: none)", 0, 10**9, 0, key="admin-team-tokens")
        if st.form_submit_button("Add the team"):
            try:
                _, token = games.add_team(name, team.strip(), tier, max_tool_calls=int(calls) or None,
                                          max_generated_tokens=int(tokens) or None)
            except Exception as err:
                st.error(plain_message(err))
            else:
                st.success(f"Team {team.strip()} ({tier}). Its token, shown once; give it to the team now:")
                st.code(token, language=None)
    if status["teams"]:
        with st.form("admin-revoke"):
            team = st.selectbox("Team", [t["name"] for t in status["teams"] if not t["revoked"]], key="admin-revoke")
            if st.form_submit_button("Revoke its token"):
                _act(lambda: games.revoke_team(name, team), f"Revoked {team}'s token.")


def _lifecycle(name: str, status: dict) -> None:
    st.subheader("Clock")
    if status["state"] == "draft":
        with st.form("admin-start"):
            hours = st.number_input("Hours until the deadline", 0.01, 720.0, 4.0, key="admin-hours")
            if st.form_submit_button("Start the game"):
                _act(lambda: games.start_game(name, timedelta(hours=hours)), f"{name} is running.")
    elif status["state"] == "running":
        st.write(f"Running until {status['deadline_utc']} UTC.")
        if st.button("Close the game", key="admin-close"):
            _act(lambda: games.close_game(name), f"{name} is closed.")
    elif status["state"] == "closed":
        if st.button("Reveal: check the commitments and judge every report", key="admin-reveal"):
            try:
                with st.spinner("Checking commitments and judging every report...", show_time=True):
                    checks = judging.reveal(name)
            except Exception as err:
                st.error(plain_message(err))
            else:
                st.session_state["admin-checks"] = [c.model_dump() for c in checks]
                st.rerun()
    checks = st.session_state.get("admin-checks")
    if checks and status["state"] == "revealed":
        st.markdown("**Commitment checks**")
        for check in checks:
            (st.success if check["verified"] else st.error)(
                f"{check['label']} ({check['organism_id']}): "
                f"{'verified' if check['verified'] else 'NOT VERIFIED'}, {check['detail']}")


def render() -> None:
    """Draw the page."""
    st.title("Games")
    _create()
    if "admin-flash" in st.session_state:
        st.success(st.session_state.pop("admin-flash"))
    name = selected_game()
    if name is None:
        return
    status = games.game_status(name)
    st.header(f"{name}: {status['state']}")
    _lifecycle(name, status)
    _organisms(name, status)
    _teams(name, status)
