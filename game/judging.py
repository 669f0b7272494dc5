"""The end of a game: reveal (the commitment checked), judgements, overrides, the leaderboard and the export.

At reveal every organism's sealed ground truth is hashed and compared with the commitment its card carried
when it was added; the result is recorded and shown, and a mismatch is never hidden. Then every submission
is judged with the matcher (`game.matcher`, "embedding"): a judgement that fails is recorded with its error,
never dropped or averaged away. `rescore` judges all submissions again with another matcher and keeps every
earlier result. A game master's override needs a reason and is kept with who made it and when. The
leaderboard takes each team's latest submission per organism (an override replaces its score) and reports
the time from the game's start to the team's first submission whose root cause was judged right.
"""

from __future__ import annotations

import csv
import io
import json
import secrets
from pathlib import Path

from pydantic import BaseModel

from game import games
from game.matcher import ClaimMatcher, Matcher, load_matcher
from game.report import parse_report
from game.scoring import score_report
from game.store import transaction
from game.truth import sealed_truth
from organisms.sealed import commitment, read_ground_truth
from pinhole.workspace import atomic_write_bytes

STRICT_THRESHOLD = 0.7


def matchers() -> dict[str, Matcher]:
    """The matchers a game can judge with: the calibrated one, and a stricter variant of it."""
    calibrated = load_matcher()
    return {"embedding": calibrated, "embedding-strict": calibrated.model_copy(update={"threshold": STRICT_THRESHOLD})}


class CommitmentCheck(BaseModel):
    label: str
    organism_id: str
    verified: bool
    detail: str


class LeaderboardRow(BaseModel):
    team: str
    label: str
    submission_id: str
    version: int
    score: float | None  # None: the judgement failed (see status)
    status: str  # ok, failed, overridden
    matcher: str
    minutes_to_root_cause: float | None


def reveal(name: str, db: Path | None = None) -> list[CommitmentCheck]:
    """Reveal a closed game: check every commitment, judge every submission; returns the commitment checks."""
    with transaction(db) as c:
        game_id, state, _ = games.game_row(c, name)
        if state != "closed":
            raise ValueError(f"game {name!r} is {state}: close it before the reveal")
        organisms = c.execute("SELECT label, organism_dir, organism_id, commitment FROM game_organisms "
                              "WHERE game_id = ?", [game_id]).fetchall()
    checks = [_check(label, Path(directory), organism_id, committed)
              for label, directory, organism_id, committed in organisms]
    with transaction(db) as c:
        for check in checks:
            c.execute("UPDATE game_organisms SET commitment_verified = ? WHERE game_id = ? AND label = ?",
                      [check.verified, game_id, check.label])
        c.execute("UPDATE games SET state = 'revealed', revealed_at = ? WHERE game_id = ?", [games.now(), game_id])
    judge(name, "embedding", db)
    return checks


def _check(label: str, directory: Path, organism_id: str, committed: str) -> CommitmentCheck:
    try:
        actual = commitment(read_ground_truth(directory))
    except (OSError, ValueError) as err:
        return CommitmentCheck(label=label, organism_id=organism_id, verified=False,
                               detail=f"the sealed ground truth cannot be read: {err}")
    if actual != committed:
        return CommitmentCheck(label=label, organism_id=organism_id, verified=False,
                               detail=f"the sealed ground truth hashes to {actual[:16]}..., the card committed to "
                                      f"{committed[:16]}...: it was changed after the game was set up")
    return CommitmentCheck(label=label, organism_id=organism_id, verified=True, detail="matches the card")


def judge(name: str, matcher_name: str, db: Path | None = None, matcher: ClaimMatcher | None = None) -> int:
    """Judge every submission of a revealed game with `matcher_name` (not those it judged already); returns
    how many judgements were added. Earlier judgements, by any matcher, are kept. `matcher` supplies one
    that is not built in (an LLM judge, `game.llm_judge`) under `matcher_name`."""
    available = matchers()
    if matcher is not None:
        available[matcher_name] = matcher
    if matcher_name not in available:
        raise ValueError(f"matcher {matcher_name!r}: expected one of {sorted(available)}")
    with transaction(db) as c:
        game_id, state, _ = games.game_row(c, name)
        if state != "revealed":
            raise ValueError(f"game {name!r} is {state}: submissions are judged at the reveal")
        todo = c.execute(
            "SELECT s.submission_id, s.report, o.organism_dir FROM submissions s JOIN teams t USING (team_id) "
            "JOIN game_organisms o ON o.game_id = t.game_id AND o.label = s.label "
            "WHERE t.game_id = ? AND NOT EXISTS (SELECT 1 FROM judgements j WHERE j.submission_id = s.submission_id "
            "AND j.matcher = ?)", [game_id, matcher_name]).fetchall()
    results = []
    for submission_id, report, directory in todo:
        try:
            score = score_report(parse_report(report), sealed_truth(directory), available[matcher_name])
            results.append((submission_id, "ok", score.score, score.model_dump_json()))
        except Exception as err:  # recorded as a failed judgement, shown on the leaderboard
            results.append((submission_id, "failed", None, json.dumps({"error": f"{type(err).__name__}: {err}"})))
    with transaction(db) as c:
        for submission_id, status, value, result in results:
            c.execute("INSERT INTO judgements VALUES (?, ?, ?, ?, ?, ?, ?)",
                      ["jdg-" + secrets.token_hex(6), submission_id, matcher_name, status, value, result, games.now()])
    return len(results)


def override(name: str, submission_id: str, score: float, reason: str, made_by: str, db: Path | None = None) -> str:
    """Set a submission's score by hand; the reason and who made it are kept in the audit trail."""
    if not 0.0 <= score <= 1.0:
        raise ValueError(f"an overriding score is in [0, 1], got {score}")
    if len(reason.strip()) < 5:
        raise ValueError("an override needs a reason (at least a few words)")
    with transaction(db) as c:
        game_id, state, _ = games.game_row(c, name)
        known = c.execute("SELECT 1 FROM submissions s JOIN teams t USING (team_id) WHERE t.game_id = ? "
                          "AND s.submission_id = ?", [game_id, submission_id]).fetchone()
        if not known:
            raise ValueError(f"game {name!r} has no submission {submission_id!r}")
        override_id = "ovr-" + secrets.token_hex(6)
        c.execute("INSERT INTO overrides VALUES (?, ?, ?, ?, ?, ?)",
                  [override_id, submission_id, score, reason.strip(), made_by, games.now()])
    return override_id


def leaderboard(name: str, matcher_name: str = "embedding", db: Path | None = None) -> list[LeaderboardRow]:
    """Each team's latest submission per organism with its score, best first (a revealed game only)."""
    with transaction(db) as c:
        game_id, state, _ = games.game_row(c, name)
        if state != "revealed":
            raise ValueError(f"game {name!r} is {state}: the leaderboard is shown after the reveal")
        (started,) = c.execute("SELECT started_at FROM games WHERE game_id = ?", [game_id]).fetchone()
        rows = c.execute(
            "SELECT t.name, s.label, s.submission_id, s.version, s.submitted_at, j.status, j.score, j.result, "
            "(SELECT o.score FROM overrides o WHERE o.submission_id = s.submission_id ORDER BY o.made_at DESC LIMIT 1) "
            "FROM submissions s JOIN teams t USING (team_id) "
            "LEFT JOIN judgements j ON j.submission_id = s.submission_id AND j.matcher = ? "
            "WHERE t.game_id = ? ORDER BY s.submitted_at, s.version", [matcher_name, game_id]).fetchall()
    latest: dict[tuple[str, str], LeaderboardRow] = {}
    first_root: dict[tuple[str, str], float] = {}
    for team, label, sid, version, at, status, value, result, overridden in rows:
        key = (team, label)
        if status == "ok" and _root_cause_found(result) and key not in first_root:
            first_root[key] = round((at - started).total_seconds() / 60, 2)
        latest[key] = LeaderboardRow(
            team=team, label=label, submission_id=sid, version=version,
            score=overridden if overridden is not None else value,
            status="overridden" if overridden is not None else (status or "unjudged"), matcher=matcher_name,
            minutes_to_root_cause=None)
    for key, row in latest.items():
        row.minutes_to_root_cause = first_root.get(key)
    return sorted(latest.values(), key=lambda r: (-(r.score if r.score is not None else -1), r.team, r.label))


def _root_cause_found(result: str | None) -> bool:
    items = json.loads(result or "{}").get("items", [])
    return any(i["kind"] == "root_cause" and i["found"] for i in items)


def export(name: str, out_dir: Path, db: Path | None = None) -> list[Path]:
    """Write the leaderboard as CSV and JSON (with the commitment checks) after the reveal; returns the files."""
    rows = leaderboard(name, db=db)
    with transaction(db) as c:
        game_id, _, _ = games.game_row(c, name)
        checks = c.execute("SELECT label, organism_id, commitment_verified FROM game_organisms WHERE game_id = ? "
                           "ORDER BY label", [game_id]).fetchall()
    out_dir.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(LeaderboardRow.model_fields))
    writer.writeheader()
    writer.writerows(r.model_dump() for r in rows)
    csv_path, json_path = out_dir / f"{name}-leaderboard.csv", out_dir / f"{name}-results.json"
    atomic_write_bytes(csv_path, buffer.getvalue().encode("utf-8"))
    document = {"game": name, "leaderboard": [r.model_dump() for r in rows],
                "commitments": [{"label": a, "organism_id": b, "verified": v} for a, b, v in checks]}
    atomic_write_bytes(json_path, json.dumps(document, indent=2).encode("utf-8"))
    return [csv_path, json_path]


def latest_submission(name: str, team: str, label: str, db: Path | None = None) -> str:
    """The id of a team's latest submission on organism `label`."""
    with transaction(db) as c:
        game_id, _, _ = games.game_row(c, name)
        row = c.execute("SELECT s.submission_id FROM submissions s JOIN teams t USING (team_id) WHERE t.game_id = ? "
                        "AND t.name = ? AND s.label = ? ORDER BY s.version DESC LIMIT 1",
                        [game_id, team, label]).fetchone()
    if row is None:
        raise ValueError(f"game {name!r}: team {team!r} has no submission on {label!r}")
    return row[0]


class Agreement(BaseModel):
    """How two matchers' judgements of the same submissions compare."""

    submissions: int  # judged (successfully) by both
    items: int  # ground-truth items compared over those submissions
    item_agreement: float | None  # share of items both found or both missed
    mean_abs_score_difference: float | None


def agreement(name: str, first: str, second: str, db: Path | None = None) -> Agreement:
    """Compare the judgements of matchers `first` and `second` on a game's submissions."""
    with transaction(db) as c:
        game_id, _, _ = games.game_row(c, name)
        rows = c.execute(
            "SELECT a.result, b.result, a.score, b.score FROM judgements a JOIN judgements b USING (submission_id) "
            "JOIN submissions s USING (submission_id) JOIN teams t USING (team_id) WHERE t.game_id = ? "
            "AND a.matcher = ? AND b.matcher = ? AND a.status = 'ok' AND b.status = 'ok'",
            [game_id, first, second]).fetchall()
    same = total = 0
    for result_a, result_b, _, _ in rows:
        found_a = {i["item"]: i["found"] for i in json.loads(result_a)["items"]}
        found_b = {i["item"]: i["found"] for i in json.loads(result_b)["items"]}
        for item in found_a.keys() & found_b.keys():
            total += 1
            same += found_a[item] == found_b[item]
    differences = [abs(a - b) for _, _, a, b in rows]
    return Agreement(submissions=len(rows), items=total, item_agreement=round(same / total, 4) if total else None,
                     mean_abs_score_difference=round(sum(differences) / len(differences), 4) if differences else None)
