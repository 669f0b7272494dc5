"""The tool-call log: one `ToolCall` record per call of an audit tool, handed to an optional callback.

Audit tools take `callback: Callable[[ToolCall], None] | None`. Each public call is wrapped in
`record_call(...)`, which times it and reports exactly one record when it ends: with a short
summary of the result on success, with the error message on failure (the error is then re-raised
unchanged). Without a callback nothing is recorded and the tools behave the same.

    with record_call("keyword_search", {"query": q}, callback) as call:
        hits = ...
        call.summary = f"{len(hits)} hits"
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

from pydantic import BaseModel, Field

MAX_SUMMARY_CHARS = 500


class ToolCall(BaseModel):
    """One call of an audit tool: what was asked, what came back (in short), how long it took."""

    tool: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    result_summary: str = ""
    duration_s: float
    error: str | None = None


ToolCallback = Callable[[ToolCall], None]


class PendingCall:
    """The call in progress; set `summary` to describe the result before the block ends."""

    def __init__(self) -> None:
        self.summary = ""


def _short(text: str) -> str:
    return text if len(text) <= MAX_SUMMARY_CHARS else text[: MAX_SUMMARY_CHARS - 1] + "…"


def _error_message(err: BaseException) -> str:
    message = str(err).strip()
    return f"{type(err).__name__}: {message}" if message else type(err).__name__


@contextlib.contextmanager
def record_call(tool: str, arguments: dict[str, Any], callback: ToolCallback | None) -> Iterator[PendingCall]:
    """Time the enclosed tool call and report one `ToolCall` to `callback` (if any) when it ends.

    Errors raised inside the block are reported with their message and then re-raised.
    """
    pending = PendingCall()
    start = time.perf_counter()
    try:
        yield pending
    except BaseException as err:
        if callback is not None:
            callback(ToolCall(tool=tool, arguments=arguments, result_summary=_short(pending.summary),
                              duration_s=time.perf_counter() - start, error=_short(_error_message(err))))
        raise
    if callback is not None:
        callback(ToolCall(tool=tool, arguments=arguments, result_summary=_short(pending.summary),
                          duration_s=time.perf_counter() - start, error=None))
