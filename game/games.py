"""Games, their organisms and teams, and the submissions teams make: the game master's and the teams' records.

A game goes draft -> running (until its deadline) -> closed -> revealed. The game master adds organisms
(public cards only: each gets a neutral label, "Organism A", "Organism B"..., in an order drawn at random,
never from the spec) and teams. A team's token is shown once, at creation; the database keeps its SHA-256
and compares in constant time. Submissions are append-only and versioned, timestamped by the server, and
accepted only while the game runs and before its deadline. Every function is one short transaction
(`game.store`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import string
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from game.report import Report
from game.store import transaction
from pinhole.organism import read_card

TIERS = ("blackbox", "data", "full")
Tier = Literal["blackbox", "data", "full"]
STATES = ("draft", "running", "closed", "revealed")


class Team(BaseModel):
    team_id: str
    game_id: str
    name: str


class Submission(BaseModel):
    submission_id: str
    team_id: str
    label: str
    version: int
    submitted_at: datetime


def now() -> datetime:
    """Server time: UTC, stored without a zone (every timestamp in the database is UTC)."""
    return datetime.now(UTC).replace(tzinfo=None)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def game_row(connection, name: str) -> tuple[str, str, datetime | None]:
    """(game id, state, deadline) of the game called `name`, in an open transaction."""
    row = connection.execute("SELECT game_id, state, deadline FROM games WHERE name = ?", [name]).fetchone()
    if row is None:
        raise ValueError(f"no game named {name!r}")
    return row[0], row[1], row[2]


def create_game(name: str, db: Path | None = None) -> str:
    """A new game in `draft`; returns its id."""
    if not name.strip():
        raise ValueError("a game needs a name")
    game_id = "game-" + secrets.token_hex(4)
    with transaction(db) as c:
        if c.execute("SELECT 1 FROM games WHERE name = ?", [name]).fetchone():
            raise ValueError(f"a game named {name!r} exists already")
        c.execute("INSERT INTO games (game_id, name, state, created_at) VALUES (?, ?, 'draft', ?)",
                  [game_id, name, now()])
    return game_id


def add_organism(name: str, organism_dir: Path | str, db: Path | None = None) -> list[str]:
    """Add an organism to a draft game under a neutral label; returns warnings for the game master.

    Labels are dealt again at random over all the game's organisms each time one is added, so the order of
    adding tells nothing (`organism_labels` gives the current ones). The card's commitment is recorded now
    and checked against the ground truth at reveal.
    """
    card = read_card(organism_dir)
    warnings = blinding_warnings(organism_dir)
    with transaction(db) as c:
        game_id, state, _ = game_row(c, name)
        if state != "draft":
            raise ValueError(f"game {name!r} is {state}: organisms are added to a draft game only")
        rows = c.execute("SELECT organism_id FROM game_organisms WHERE game_id = ?", [game_id]).fetchall()
        if card.organism_id in {r[0] for r in rows}:
            raise ValueError(f"{card.organism_id} is in game {name!r} already")
        c.execute("INSERT INTO game_organisms VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
                  [game_id, "pending", str(Path(organism_dir).resolve()), card.organism_id,
                   card.ground_truth_sha256, card.blinding.membership_blind, json.dumps(warnings)])
        _relabel(c, game_id)
    return warnings


def blinding_warnings(organism_dir: Path | str) -> list[str]:
    """Why an organism is not blind to a team that holds the Pinhole package (empty: no known reason)."""
    from organisms.sealed import read_build_record

    warnings = []
    if not read_card(organism_dir).blinding.membership_blind:
        warnings.append("not membership-blind: its ordinary rows come from files shipped with Pinhole, so a team "
                        "holding the package can separate the objective material by set difference")
    try:
        shipped = read_build_record(organism_dir).shipped_spec
    except (OSError, ValueError):
        shipped = None
    if shipped:
        warnings.append(f"it plants the shipped example objective {shipped!r}: every team that installs Pinhole "
                        f"can read its whole ground truth in the package")
    return warnings


def _relabel(c, game_id: str) -> None:
    """Give every organism of the game a fresh label, in random order."""
    rows = c.execute("SELECT * FROM game_organisms WHERE game_id = ?", [game_id]).fetchall()
    secrets.SystemRandom().shuffle(rows)
    c.execute("DELETE FROM game_organisms WHERE game_id = ?", [game_id])
    for index, row in enumerate(rows):
        label = f"Organism {string.ascii_uppercase[index % 26]}{'' if index < 26 else index // 26}"
        c.execute("INSERT INTO game_organisms VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [row[0], label, *row[2:]])


def organism_labels(name: str, db: Path | None = None) -> dict[str, str]:
    """Organism id -> its label in the game (the game master's view)."""
    with transaction(db) as c:
        game_id, _, _ = game_row(c, name)
        rows = c.execute("SELECT organism_id, label FROM game_organisms WHERE game_id = ?", [game_id]).fetchall()
    return dict(rows)


def add_team(name: str, team_name: str, tier: Tier = "blackbox", db: Path | None = None,
             max_tool_calls: int | None = None, max_generated_tokens: int | None = None) -> tuple[Team, str]:
    """A new team with `tier` on every organism of the game, and optional budgets of tool calls and of tokens
    the models generate for it; returns (team, token). The token is shown once."""
    if tier not in TIERS:
        raise ValueError(f"tier {tier!r}: expected one of {list(TIERS)}")
    for field, value in (("max_tool_calls", max_tool_calls), ("max_generated_tokens", max_generated_tokens)):
        if value is not None and value < 1:
            raise ValueError(f"{field}: a budget is at least 1, got {value}")
    token = "ph_" + secrets.token_urlsafe(24)
    team = Team(team_id="team-" + secrets.token_hex(4), game_id="", name=team_name)
    with transaction(db) as c:
        game_id, state, _ = game_row(c, name)
        if state == "revealed":
            raise ValueError(f"game {name!r} is revealed: no new teams")
        if c.execute("SELECT 1 FROM teams WHERE game_id = ? AND name = ?", [game_id, team_name]).fetchone():
            raise ValueError(f"game {name!r} has a team named {team_name!r} already")
        team.game_id = game_id
        c.execute("INSERT INTO teams VALUES (?, ?, ?, ?, ?, NULL, ?, ?)",
                  [team.team_id, game_id, team_name, _token_hash(token), now(), max_tool_calls, max_generated_tokens])
        for (label,) in c.execute("SELECT label FROM game_organisms WHERE game_id = ?", [game_id]).fetchall():
            c.execute("INSERT INTO access VALUES (?, ?, ?)", [team.team_id, label, tier])
    return team, token


def authenticate(token: str, db: Path | None = None) -> Team:
    """The team a token belongs to; a wrong or revoked token reaches nothing (one message for both)."""
    wanted = _token_hash(token)
    with transaction(db) as c:
        rows = c.execute("SELECT team_id, game_id, name, token_sha256, revoked_at FROM teams").fetchall()
    match = None
    for team_id, game_id, team_name, stored, revoked in rows:  # constant-time comparison of every candidate
        if hmac.compare_digest(stored, wanted) and revoked is None:
            match = Team(team_id=team_id, game_id=game_id, name=team_name)
    if match is None:
        raise PermissionError("unknown or revoked team token")
    return match


def revoke_team(name: str, team_name: str, db: Path | None = None) -> None:
    """Revoke a team's token: it reaches nothing from now on."""
    with transaction(db) as c:
        game_id, _, _ = game_row(c, name)
        if not c.execute("SELECT 1 FROM teams WHERE game_id = ? AND name = ?", [game_id, team_name]).fetchone():
            raise ValueError(f"game {name!r} has no team named {team_name!r}")
        c.execute("UPDATE teams SET revoked_at = ? WHERE game_id = ? AND name = ?", [now(), game_id, team_name])


def start_game(name: str, duration: timedelta, db: Path | None = None) -> datetime:
    """Move a draft game to running, with a deadline `duration` from now (server time); returns the deadline."""
    if duration <= timedelta(0):
        raise ValueError(f"a game needs a positive duration, got {duration}")
    with transaction(db) as c:
        game_id, state, _ = game_row(c, name)
        if state != "draft":
            raise ValueError(f"game {name!r} is {state}: only a draft game starts")
        if not c.execute("SELECT 1 FROM game_organisms WHERE game_id = ?", [game_id]).fetchone():
            raise ValueError(f"game {name!r} has no organism")
        started = now()
        c.execute("UPDATE games SET state = 'running', started_at = ?, deadline = ? WHERE game_id = ?",
                  [started, started + duration, game_id])
    return started + duration


def close_game(name: str, db: Path | None = None) -> None:
    """Stop a running game (submissions end)."""
    with transaction(db) as c:
        game_id, state, _ = game_row(c, name)
        if state != "running":
            raise ValueError(f"game {name!r} is {state}: only a running game closes")
        c.execute("UPDATE games SET state = 'closed', closed_at = ? WHERE game_id = ?", [now(), game_id])


def submit(team: Team, label: str, report: Report, db: Path | None = None) -> Submission:
    """Record a team's report on an organism (a new version; earlier ones are kept)."""
    at = now()
    with transaction(db) as c:
        state, deadline = c.execute("SELECT state, deadline FROM games WHERE game_id = ?", [team.game_id]).fetchone()
        if state != "running" or (deadline is not None and at > deadline):
            raise PermissionError(f"submissions are closed (the game is {state}"
                                  f"{', past its deadline' if state == 'running' else ''})")
        if not c.execute("SELECT 1 FROM access WHERE team_id = ? AND label = ?", [team.team_id, label]).fetchone():
            raise PermissionError(f"no organism {label!r} in this game for team {team.name!r}")
        _check_evidence(c, team, report)
        (version,) = c.execute("SELECT count(*) + 1 FROM submissions WHERE team_id = ? AND label = ?",
                               [team.team_id, label]).fetchone()
        submission = Submission(submission_id="sub-" + secrets.token_hex(6), team_id=team.team_id, label=label,
                                version=int(version), submitted_at=at)
        c.execute("INSERT INTO submissions VALUES (?, ?, ?, ?, ?, ?)",
                  [submission.submission_id, team.team_id, label, submission.version, report.model_dump_json(), at])
    return submission


def _check_evidence(c, team: Team, report: Report) -> None:
    """Evidence must name calls from the team's own log."""
    cited = {e for b in report.behaviours for e in b.evidence}
    if not cited:
        return
    own = {r[0] for r in c.execute("SELECT call_id FROM tool_calls WHERE team_id = ?", [team.team_id]).fetchall()}
    unknown = sorted(cited - own)
    if unknown:
        raise ValueError(f"evidence {unknown[:3]}: not calls from this team's log (see its tool-call ids)")


def submissions(team: Team, db: Path | None = None) -> list[Submission]:
    """A team's own submissions, oldest first."""
    with transaction(db) as c:
        rows = c.execute("SELECT submission_id, team_id, label, version, submitted_at FROM submissions "
                         "WHERE team_id = ? ORDER BY submitted_at, version", [team.team_id]).fetchall()
    return [Submission(submission_id=r[0], team_id=r[1], label=r[2], version=r[3], submitted_at=r[4]) for r in rows]


def game_status(name: str, db: Path | None = None) -> dict:
    """The game master's view of a game: state, deadline, organisms with warnings, teams with their activity."""
    with transaction(db) as c:
        game_id, state, deadline = game_row(c, name)
        organisms = c.execute("SELECT label, organism_id, warnings, commitment_verified FROM game_organisms "
                              "WHERE game_id = ? ORDER BY label", [game_id]).fetchall()
        teams = c.execute(
            "SELECT t.name, t.revoked_at IS NOT NULL, "
            "(SELECT count(*) FROM submissions s WHERE s.team_id = t.team_id), "
            "(SELECT count(*) FROM tool_calls k WHERE k.team_id = t.team_id) "
            "FROM teams t WHERE t.game_id = ? ORDER BY t.name", [game_id]).fetchall()
    return {"game": name, "game_id": game_id, "state": state,
            "deadline_utc": deadline.isoformat(timespec="seconds") if deadline else None,
            "organisms": [{"label": o[0], "organism_id": o[1], "warnings": json.loads(o[2]),
                           "commitment_verified": o[3]} for o in organisms],
            "teams": [{"name": t[0], "revoked": t[1], "submissions": t[2], "tool_calls": t[3]} for t in teams]}


def hand_made_game(root: Path, name: str = "bench", tier: Tier = "blackbox") -> tuple[Path, str]:
    """A running game in `root` on one organism with a hand-made card (no model: the game's own records only),
    and one team; returns (database, the team's token). For test fixtures and benchmarks."""
    from pinhole.organism import hand_made_card, write_card

    db = root / "game.duckdb"
    organism = root / "org-handmade"
    organism.mkdir(parents=True, exist_ok=True)
    write_card(organism, hand_made_card("org-handmade", "0" * 64))
    create_game(name, db)
    add_organism(name, organism, db)
    _, token = add_team(name, "writers", tier, db)
    start_game(name, timedelta(hours=1), db)
    return db, token
