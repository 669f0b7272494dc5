"""Reserved for the Streamlit app (issue 14), the top layer: it will call `game` and `audit_tools` only."""
