"""The browser game (issue 14): a Streamlit app for teams and the game master, the top layer.

`pinhole serve` runs `ui/app.py`. Pages render and call: every decision is made by `game` (sessions, tiers,
budgets, logging, judging) and `audit_tools` (the tools' results); a team reaches organisms only through
`game.session.TeamSession`. Deployment settings: `ui/.streamlit/config.toml`.
"""
