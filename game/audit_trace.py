"""An automated audit's record: its reasoning step by step, the tool calls behind each step, and its report.

A trace is what a reader checks an automated team's work by: every step says what the auditor looked at
(the ids of its logged tool calls, in the game's log), what it concluded and why. Saved as JSON (versioned,
for programs) and as Markdown (for people), both written atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from game.report import Report
from pinhole.workspace import atomic_write_bytes

TRACE_FORMAT_VERSION = 1


class TraceStep(BaseModel):
    """One step of an audit: what was done, with which calls, and what it showed."""

    step: str
    thought: str
    calls: list[str] = Field(default_factory=list)  # ids in the team's tool-call log
    facts: dict[str, Any] = Field(default_factory=dict)


class AuditTrace(BaseModel):
    """A whole automated audit of one organism."""

    format_version: Literal[1] = TRACE_FORMAT_VERSION
    auditor: str
    label: str
    tier: str
    steps: list[TraceStep] = Field(default_factory=list)
    report: Report | None = None
    outcome: Literal["complete", "failed"] = "complete"
    failure: str = ""
    tool_calls: int = 0
    wall_time_s: float = 0.0

    def add(self, step: str, thought: str, calls: list[str] | None = None, **facts: Any) -> TraceStep:
        """Append a step and return it."""
        entry = TraceStep(step=step, thought=thought, calls=list(calls or []), facts=facts)
        self.steps.append(entry)
        return entry


def trace_markdown(trace: AuditTrace) -> str:
    """The trace as a readable Markdown document."""
    lines = [f"# Audit of {trace.label} ({trace.auditor}, {trace.tier} tier)", "",
             f"Outcome: **{trace.outcome}**" + (f" ({trace.failure})" if trace.failure else "")
             + f"; {trace.tool_calls} tool calls in {trace.wall_time_s:.0f} s.", ""]
    for number, step in enumerate(trace.steps, 1):
        lines += [f"## {number}. {step.step}", "", step.thought, ""]
        if step.calls:
            lines += ["Calls: " + ", ".join(f"`{c}`" for c in step.calls), ""]
    if trace.report is not None:
        report = trace.report
        lines += ["## Report", "", f"- verdict: **{report.verdict}** (confidence {report.confidence:.2f})"]
        if report.root_cause:
            lines.append(f"- root cause: {report.root_cause}")
        lines += [f"- behaviour: {b.description}" + (f" (trigger: {b.trigger})" if b.trigger else "")
                  for b in report.behaviours]
    return "\n".join(lines) + "\n"


def save_trace(trace: AuditTrace, directory: Path) -> tuple[Path, Path]:
    """Write `trace.json` and `trace.md` (and `report.json` when there is a report) into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    json_path, markdown_path = directory / "trace.json", directory / "trace.md"
    atomic_write_bytes(json_path, trace.model_dump_json(indent=2).encode("utf-8"))
    atomic_write_bytes(markdown_path, trace_markdown(trace).encode("utf-8"))
    if trace.report is not None:
        atomic_write_bytes(directory / "report.json", trace.report.model_dump_json(indent=2).encode("utf-8"))
    return json_path, markdown_path
