"""Plain messages for the browser: what a user did wrong, never a traceback, never a server path."""

from __future__ import annotations

import logging
import re

from audit_tools.sql_sandbox import SqlRefused

USER_ERRORS = (PermissionError, ValueError, KeyError, LookupError, SqlRefused)
_PATH = re.compile(r"(?<![\w.:/])/(?:[\w.@+~-]+/)*[\w.@+~-]+")
GENERIC = "Something went wrong on the server; the game master can see the details in its log."
logger = logging.getLogger("pinhole.ui")


def redact(text: str) -> str:
    """`text` with absolute file paths replaced by "[path]"."""
    return _PATH.sub("[path]", text)


def plain_message(err: BaseException) -> str:
    """A message a team may read: a user error's own words (paths removed); a generic line for anything else."""
    if isinstance(err, SqlRefused):
        return redact(f"Refused ({err.category}): {err.message}")
    if isinstance(err, USER_ERRORS):
        message = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        return redact(str(message)) or type(err).__name__
    logger.exception("unexpected error in a page", exc_info=err)
    return GENERIC
