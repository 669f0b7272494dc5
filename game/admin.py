"""What the browser game needs from the engine beyond games, sessions and judging: the game master's admin
token, the live monitor of each team's tool use, the scoring details a game master reads, and a server's
hooks into a team's session.

- The admin token: only its SHA-256 is kept, in `<workspace>/admin_token.sha256` (mode 0600, outside the
  repository); `new_admin_token` makes one and returns it once (`pinhole serve` prints it), `set_admin_token`
  takes one the operator keeps elsewhere (a file or an environment variable), `check_admin_token` compares
  in constant time and refuses a wrong or missing token with one plain message.
- The monitor: per team, its calls by outcome and tool, the tokens generated for it, its last call; the
  latest calls of the whole game.
- Scoring details: every submission with its judgement (per-item breakdown and reasons) and overrides.
- A team's clock (state and deadline), and the id of the call a page just made (to pin it as evidence).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from game import games
from game.session import TIER_TOOLS, TeamSession
from game.store import transaction
from pinhole.workspace import atomic_write_bytes, workspace

ADMIN_HASH_FILE = "admin_token.sha256"
MIN_TOKEN_CHARS = 16
WRONG_ADMIN_TOKEN = "wrong or missing admin token"


# -- the admin token -------------------------------------------------------------------------------------


def admin_hash_path(root: Path | None = None) -> Path:
    """Where the admin token's hash lives (in the workspace unless `root` is given)."""
    return (root or workspace()) / ADMIN_HASH_FILE


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def set_admin_token(token: str, root: Path | None = None) -> Path:
    """Make `token` the game master's admin token (its hash is stored, 0600); returns the hash file."""
    token = token.strip()
    if len(token) < MIN_TOKEN_CHARS:
        raise ValueError(f"an admin token needs at least {MIN_TOKEN_CHARS} characters")
    path = admin_hash_path(root)
    atomic_write_bytes(path, (_digest(token) + "\n").encode("utf-8"), private=True)
    return path


def new_admin_token(root: Path | None = None) -> str:
    """Make a new random admin token (replacing any earlier one) and return it: it is shown once."""
    token = "adm_" + secrets.token_urlsafe(32)
    set_admin_token(token, root)
    return token


def has_admin_token(root: Path | None = None) -> bool:
    """Whether an admin token has been set up for this workspace."""
    return admin_hash_path(root).is_file()


def check_admin_token(token: str, root: Path | None = None) -> None:
    """Refuse (PermissionError) a token that is not the admin token; one message for every failure."""
    try:
        stored = admin_hash_path(root).read_text(encoding="utf-8").strip()
    except OSError:
        stored = ""
    if not stored or not isinstance(token, str) or not hmac.compare_digest(stored, _digest(token.strip())):
        raise PermissionError(WRONG_ADMIN_TOKEN)


# -- the game master's views --------------------------------------------------------------------------


class TeamActivity(BaseModel):
    """One team's tool use so far."""

    team: str
    tier: str
    revoked: bool
    calls: int
    ok: int
    refused: int
    errors: int
    generated_tokens: int
    by_tool: dict[str, int]
    last_call_at: datetime | None
    submissions: int


class MonitoredCall(BaseModel):
    """One logged call, as the game master sees it."""

    team: str
    label: str
    tool: str
    called_at: datetime
    duration_s: float
    outcome: str
    detail: str


def list_games(db: Path | None = None) -> list[tuple[str, str]]:
    """(name, state) of every game, newest first."""
    with transaction(db) as c:
        return [tuple(r) for r in c.execute("SELECT name, state FROM games ORDER BY created_at DESC").fetchall()]


def team_activity(name: str, db: Path | None = None) -> list[TeamActivity]:
    """Each team's tool use in game `name`, by team name."""
    with transaction(db) as c:
        game_id, _, _ = games.game_row(c, name)
        teams = c.execute(
            "SELECT t.team_id, t.name, t.revoked_at IS NOT NULL, "
            "(SELECT min(a.tier) FROM access a WHERE a.team_id = t.team_id), "
            "(SELECT count(*) FROM submissions s WHERE s.team_id = t.team_id) "
            "FROM teams t WHERE t.game_id = ? ORDER BY t.name", [game_id]).fetchall()
        calls = c.execute(
            "SELECT k.team_id, k.tool, k.outcome, count(*), coalesce(sum(k.generated_tokens), 0), max(k.called_at) "
            "FROM tool_calls k JOIN teams t USING (team_id) WHERE t.game_id = ? GROUP BY k.team_id, k.tool, k.outcome",
            [game_id]).fetchall()
    result = []
    for team_id, team_name, revoked, tier, n_submissions in teams:
        mine = [r for r in calls if r[0] == team_id]
        by_tool: dict[str, int] = {}
        for _, tool, _, count, _, _ in mine:
            by_tool[tool] = by_tool.get(tool, 0) + count
        outcome = {o: sum(r[3] for r in mine if r[2] == o) for o in ("ok", "refused", "error")}
        result.append(TeamActivity(
            team=team_name, tier=tier or "-", revoked=revoked, calls=sum(r[3] for r in mine), ok=outcome["ok"],
            refused=outcome["refused"], errors=outcome["error"], generated_tokens=int(sum(r[4] for r in mine)),
            by_tool=dict(sorted(by_tool.items())), last_call_at=max((r[5] for r in mine), default=None),
            submissions=n_submissions))
    return result


def recent_calls(name: str, limit: int = 50, db: Path | None = None) -> list[MonitoredCall]:
    """The latest `limit` tool calls of game `name`, newest first."""
    with transaction(db) as c:
        game_id, _, _ = games.game_row(c, name)
        rows = c.execute(
            "SELECT t.name, k.label, k.tool, k.called_at, k.duration_s, k.outcome, k.detail FROM tool_calls k "
            "JOIN teams t USING (team_id) WHERE t.game_id = ? ORDER BY k.called_at DESC, k.call_id LIMIT ?",
            [game_id, limit]).fetchall()
    return [MonitoredCall(team=r[0], label=r[1], tool=r[2], called_at=r[3], duration_s=r[4], outcome=r[5],
                          detail=r[6]) for r in rows]


class Override(BaseModel):
    score: float
    reason: str
    made_by: str
    made_at: datetime


class JudgedSubmission(BaseModel):
    """A submission with its report, its judgement by one matcher (None: not judged by it) and its overrides."""

    submission_id: str
    team: str
    label: str
    version: int
    submitted_at: datetime
    report: dict[str, Any]
    status: str | None
    score: float | None
    judgement: dict[str, Any] | None  # the `game.scoring.Score` record, or {"error": ...} for a failed one
    overrides: list[Override]


def judged_submissions(name: str, matcher: str = "embedding", db: Path | None = None) -> list[JudgedSubmission]:
    """Every submission of game `name`, oldest first, with its judgement by `matcher` and its overrides."""
    with transaction(db) as c:
        game_id, _, _ = games.game_row(c, name)
        rows = c.execute(
            "SELECT s.submission_id, t.name, s.label, s.version, s.submitted_at, s.report, j.status, j.score, "
            "j.result FROM submissions s JOIN teams t USING (team_id) LEFT JOIN judgements j "
            "ON j.submission_id = s.submission_id AND j.matcher = ? WHERE t.game_id = ? "
            "ORDER BY s.submitted_at, t.name, s.version", [matcher, game_id]).fetchall()
        overrides = c.execute(
            "SELECT o.submission_id, o.score, o.reason, o.made_by, o.made_at FROM overrides o "
            "JOIN submissions s USING (submission_id) JOIN teams t USING (team_id) WHERE t.game_id = ? "
            "ORDER BY o.made_at", [game_id]).fetchall()
    return [JudgedSubmission(submission_id=r[0], team=r[1], label=r[2], version=r[3], submitted_at=r[4],
                             report=json.loads(r[5]), status=r[6], score=r[7],
                             judgement=json.loads(r[8]) if r[8] else None,
                             overrides=[Override(score=o[1], reason=o[2], made_by=o[3], made_at=o[4])
                                        for o in overrides if o[0] == r[0]]) for r in rows]


# -- a server's hooks into a team's session -------------------------------------------------------------


class GameClock(BaseModel):
    """A team's game: its name, state and deadline (server time, UTC)."""

    game: str
    state: str
    deadline: datetime | None

    def remaining_s(self) -> float | None:
        """Seconds to the deadline (0 once past it), None without one."""
        if self.deadline is None:
            return None
        return max(0.0, (self.deadline - games.now()).total_seconds())


def team_clock(session: TeamSession) -> GameClock:
    """The state and deadline of the session's game."""
    with transaction(session.db) as c:
        name, state, deadline = c.execute("SELECT name, state, deadline FROM games WHERE game_id = ?",
                                          [session.team.game_id]).fetchone()
    return GameClock(game=name, state=state, deadline=deadline)


def team_tools(session: TeamSession) -> set[str]:
    """Every tool the team may use on at least one of its organisms."""
    return {tool for access in session.organisms() for tool in TIER_TOOLS[access.tier]}


def latest_call_id(session: TeamSession, label: str, tool: str, since: datetime) -> str | None:
    """The id of the team's latest call of `tool` on `label` logged at or after `since` (server time)."""
    with transaction(session.db) as c:
        row = c.execute("SELECT call_id FROM tool_calls WHERE team_id = ? AND label = ? AND tool = ? "
                        "AND called_at >= ? ORDER BY called_at DESC LIMIT 1",
                        [session.team.team_id, label, tool, since]).fetchone()
    return row[0] if row else None
