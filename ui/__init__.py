"""Streamlit pages for the auditing game; thin, they call `game` and `audit_tools`."""
