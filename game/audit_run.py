"""Running an automated audit: alone on one organism (`pinhole audit`), or as a team in a running game.

Alone, the auditor still plays through the engine: a private game is created for the run (its own database in
the run's directory), the organism added under a neutral label, one team of the requested tier, the game
started; the auditor's calls are checked, budgeted and logged like any team's, and its report is submitted
to that game. The run's directory keeps the game database, the trace (JSON and Markdown) and the report.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel

from game import games
from game.audit_trace import AuditTrace, save_trace
from game.auditor import AuditSettings, ScriptedAuditor
from game.session import TeamSession
from pinhole.organism import read_card
from pinhole.workspace import workspace

AUDIT_TEAM = "scripted-auditor"


class Auditor(Protocol):
    """Anything that audits one organism through a team session and returns its trace."""

    def run(self) -> AuditTrace: ...


MakeAuditor = Callable[[TeamSession, str], Auditor]  # (session, organism label) -> an auditor


def scripted(settings: AuditSettings | None = None) -> MakeAuditor:
    """The scripted auditor with `settings`, as an auditor factory."""
    return lambda session, label: ScriptedAuditor(session, label, settings)


class AuditRun(BaseModel):
    """Where an audit's records are, and what it concluded."""

    directory: Path
    database: Path
    label: str
    trace: AuditTrace
    submission_id: str | None = None


def audits_dir() -> Path:
    """`<workspace>/audits`: one directory per automated audit."""
    return workspace() / "audits"


def play(session: TeamSession, label: str, make_auditor: MakeAuditor | None = None,
         out_dir: Path | None = None) -> tuple[AuditTrace, str | None]:
    """An automated team of a running game (the scripted auditor by default): audit `label`, submit the report
    when the audit completed; returns the trace and the submission id (None for a failed audit)."""
    trace = (make_auditor or scripted())(session, label).run()
    submission = session.submit(label, trace.report) if trace.outcome == "complete" and trace.report else None
    if out_dir is not None:
        save_trace(trace, out_dir)
    return trace, submission.submission_id if submission else None


def audit_organism(organism_dir: Path | str, tier: games.Tier = "full", make_auditor: MakeAuditor | None = None,
                   out_dir: Path | None = None, max_tool_calls: int | None = None) -> AuditRun:
    """Audit one organism alone, through a private game of its own (see the module docstring)."""
    organism_dir = Path(organism_dir)
    card = read_card(organism_dir)  # a clear error for a directory that is not an organism
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    directory = out_dir or audits_dir() / f"{stamp}-{card.organism_id}-{tier}-{secrets.token_hex(3)}"
    directory.mkdir(parents=True, exist_ok=True)
    db = directory / "game.duckdb"
    name = f"audit-{directory.name}"
    games.create_game(name, db)
    games.add_organism(name, organism_dir, db)
    _, token = games.add_team(name, AUDIT_TEAM, tier, db, max_tool_calls=max_tool_calls)
    games.start_game(name, timedelta(days=1), db)
    session = TeamSession(token, db)
    label = session.organisms()[0].label
    trace, submission_id = play(session, label, make_auditor, directory)
    return AuditRun(directory=directory, database=db, label=label, trace=trace, submission_id=submission_id)
