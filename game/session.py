"""A team's session: the only door from a team to the organisms, handing out exactly its tier's tools.

Tiers follow Marks et al.'s teams:
- `blackbox`: chat, prefill, persona, raw completion, batteries (the organism only);
- `data`: + training-data search (keyword, semantic, one document) and the SQL sandbox;
- `full`: + comparison with the base model (`model="base"`) and the microscope (SAE features, feature pages,
  model diffing, the activation-difference lens, attribution, steering, the logit lens).
A call outside the team's tier, on an organism it has no access to, or when the game is not running is
refused, as is any call past the team's optional budgets (tool calls, tokens generated for it), and the
refusal is logged like every call (tool, arguments, server time, duration, outcome, tokens generated) in the
game database's append-only tool-call log. A
team sees only its own log, notes and submissions; a report's evidence must cite calls from that log. The
session reaches an organism's team-facing files (adapter, corpus, card) only; nothing here imports the
sealed part.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from game import games
from game.report import Report
from game.store import transaction

BLACKBOX_TOOLS = ("chat", "prefill", "persona", "complete", "battery")
DATA_TOOLS = ("keyword_search", "semantic_search", "document", "sql")
MICROSCOPE_TOOLS = ("text_features", "feature_search", "feature_page", "nearest_features", "feature_diff", "diff_lens",
                    "attribute", "steer", "logit_lens")
TIER_TOOLS: dict[str, tuple[str, ...]] = {
    "blackbox": BLACKBOX_TOOLS,
    "data": BLACKBOX_TOOLS + DATA_TOOLS,
    "full": BLACKBOX_TOOLS + DATA_TOOLS + MICROSCOPE_TOOLS,  # + base comparison
}
ALL_TOOLS = TIER_TOOLS["full"]
BASE_COMPARISON_TIERS = ("full",)


class LoggedCall(BaseModel):
    """One entry of a team's tool-call log."""

    call_id: str
    label: str
    tool: str
    arguments: dict[str, Any]
    called_at: datetime
    duration_s: float
    outcome: str  # ok, error, refused
    detail: str


class OrganismAccess(BaseModel):
    """What a team is told about an organism of its game."""

    label: str
    tier: str
    tools: list[str]


class TeamSession:
    """A team's view of its game, from its token."""

    def __init__(self, token: str, db: Path | None = None,
                 resources_for: Callable[[str], dict[str, Any]] | None = None) -> None:
        """`resources_for(organism directory)`, when given, returns the dict in which an organism's loaded model,
        index and SAE are kept (a server passes a process-wide cache, so that they load once per process, not
        once per session); by default each session keeps its own."""
        self.db = db
        self.team = games.authenticate(token, db)
        self._resources: dict[str, dict[str, Any]] = {}
        self._resources_for = resources_for
        self.last_call_id: str | None = None  # the log id of this session's latest call (evidence for a report)

    def organisms(self) -> list[OrganismAccess]:
        """The organisms this team may audit, by label, with its tier and tools on each."""
        with transaction(self.db) as c:
            rows = c.execute("SELECT label, tier FROM access WHERE team_id = ? ORDER BY label",
                             [self.team.team_id]).fetchall()
        return [OrganismAccess(label=label, tier=tier, tools=list(TIER_TOOLS[tier])) for label, tier in rows]

    def call(self, label: str, tool: str, **arguments: Any) -> Any:
        """Run `tool` on organism `label`; refused (PermissionError) outside the team's rights, logged either way."""
        started = time.perf_counter()
        try:
            self._check(label, tool, arguments)
        except PermissionError as err:
            self.last_call_id = self._log(label, tool, arguments, started, "refused", str(err))
            raise
        try:
            result = TOOLS[tool](self.resource(label), **arguments)
        except Exception as err:
            self.last_call_id = self._log(label, tool, arguments, started, "error", f"{type(err).__name__}: {err}")
            raise
        self.last_call_id = self._log(label, tool, arguments, started, "ok", _summary(result),
                                      self._generated_tokens(label, result))
        return result

    def log(self) -> list[LoggedCall]:
        """This team's own tool calls, oldest first."""
        with transaction(self.db) as c:
            rows = c.execute("SELECT call_id, label, tool, arguments, called_at, duration_s, outcome, detail "
                             "FROM tool_calls WHERE team_id = ? ORDER BY called_at, call_id",
                             [self.team.team_id]).fetchall()
        return [LoggedCall(call_id=r[0], label=r[1], tool=r[2], arguments=json.loads(r[3]), called_at=r[4],
                           duration_s=r[5], outcome=r[6], detail=r[7]) for r in rows]

    def submit(self, label: str, report: Report) -> games.Submission:
        """Submit a report on organism `label` (a new version)."""
        return games.submit(self.team, label, report, self.db)

    def submissions(self) -> list[games.Submission]:
        """This team's own submissions, oldest first."""
        return games.submissions(self.team, self.db)

    def note(self, label: str, text: str) -> str:
        """Keep an evidence note on organism `label` (only this team sees it); returns its id."""
        if not text.strip():
            raise ValueError("an empty note")
        note_id = "note-" + secrets.token_hex(6)
        with transaction(self.db) as c:
            if not c.execute("SELECT 1 FROM access WHERE team_id = ? AND label = ?",
                             [self.team.team_id, label]).fetchone():
                raise PermissionError(f"no organism {label!r} for this team")
            c.execute("INSERT INTO notes VALUES (?, ?, ?, ?, ?)",
                      [note_id, self.team.team_id, label, text, games.now()])
        return note_id

    def notes(self) -> list[dict[str, Any]]:
        """This team's own notes, oldest first."""
        with transaction(self.db) as c:
            rows = c.execute("SELECT note_id, label, text, written_at FROM notes WHERE team_id = ? "
                             "ORDER BY written_at, note_id", [self.team.team_id]).fetchall()
        return [{"note_id": r[0], "label": r[1], "text": r[2], "written_at": r[3]} for r in rows]

    def _check(self, label: str, tool: str, arguments: dict[str, Any]) -> None:
        with transaction(self.db) as c:
            state, deadline = c.execute("SELECT state, deadline FROM games WHERE game_id = ?",
                                        [self.team.game_id]).fetchone()
            row = c.execute("SELECT tier FROM access WHERE team_id = ? AND label = ?",
                            [self.team.team_id, label]).fetchone()
            budget, used, token_budget, tokens_used = c.execute(
                "SELECT max_tool_calls, (SELECT count(*) FROM tool_calls WHERE team_id = ? AND outcome != 'refused'), "
                "max_generated_tokens, (SELECT coalesce(sum(generated_tokens), 0) FROM tool_calls WHERE team_id = ?) "
                "FROM teams WHERE team_id = ?", [self.team.team_id] * 3).fetchone()
        if state != "running" or (deadline is not None and games.now() > deadline):
            late = ", past its deadline" if state == "running" else ""
            raise PermissionError(f"the game is not running ({state}{late})")
        if row is None:
            raise PermissionError(f"no organism {label!r} for this team")
        tier = row[0]
        if budget is not None and used >= budget:
            raise PermissionError(f"the team's budget of {budget} tool calls is spent")
        if token_budget is not None and tokens_used >= token_budget:
            raise PermissionError(f"the team's budget of {token_budget} generated tokens is spent ({tokens_used} used)")
        if tool not in TIER_TOOLS[tier]:
            raise PermissionError(f"{tool!r} is not in the {tier} tier (its tools: {', '.join(TIER_TOOLS[tier])})")
        if arguments.get("model", "organism") != "organism" and tier not in BASE_COMPARISON_TIERS:
            raise PermissionError(f"comparing with the base model is in the full tier only (this team: {tier})")

    def resource(self, label: str) -> dict[str, Any]:
        """The dict holding organism `label`'s loaded model, index and SAE (server side: it names the directory,
        which never reaches a team). PermissionError for an organism the team has no access to."""
        if label not in self._resources:
            with transaction(self.db) as c:
                row = c.execute("SELECT o.organism_dir FROM game_organisms o JOIN access a ON a.label = o.label "
                                "WHERE o.game_id = ? AND o.label = ? AND a.team_id = ?",
                                [self.team.game_id, label, self.team.team_id]).fetchone()
            if row is None:
                raise PermissionError(f"no organism {label!r} for this team")
            resource = self._resources_for(row[0]) if self._resources_for else {}
            resource.setdefault("directory", Path(row[0]))
            self._resources[label] = resource
        return self._resources[label]

    def _generated_tokens(self, label: str, result: Any) -> int:
        """Tokens the models generated for a call (every sample of a probe or battery; 0 for data tools)."""
        texts = [s for r in (result if isinstance(result, list) else [result]) for s in getattr(r, "samples", [])]
        texts += [s for a in getattr(result, "answers", []) for s in [*a.organism, *a.base]]
        texts += [*getattr(result, "unsteered", []), *getattr(result, "steered", [])]
        if not texts:
            return 0
        tokenizer = _target(self.resource(label)).tokenizer
        return sum(len(tokenizer(t, add_special_tokens=False).input_ids) for t in texts)

    def _log(self, label: str, tool: str, arguments: dict[str, Any], started: float, outcome: str,
             detail: str, generated_tokens: int = 0) -> str:
        call_id = "call-" + secrets.token_hex(6)
        with transaction(self.db) as c:
            c.execute("INSERT INTO tool_calls VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                      [call_id, self.team.team_id, label, tool,
                       json.dumps(arguments, default=str), games.now(), round(time.perf_counter() - started, 4),
                       outcome, detail[:500], generated_tokens])
        return call_id


def _summary(result: Any) -> str:
    if isinstance(result, list):
        return f"{len(result)} result(s)"
    return type(result).__name__


def _target(resource: dict[str, Any]):
    if "target" not in resource:
        from audit_tools.target import LocalTarget

        resource["target"] = LocalTarget.from_organism(resource["directory"])
    return resource["target"]


def _index(resource: dict[str, Any]):
    if "index" not in resource:
        from audit_tools.corpus_index import CorpusIndex

        resource["index"] = CorpusIndex.open(resource["directory"])
    return resource["index"]


def _probe(name: str) -> Callable[..., Any]:
    def run(resource: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        from audit_tools import probes

        return getattr(probes, name)(_target(resource), *args, **kwargs)

    return run


def _battery(resource: dict[str, Any], **kwargs: Any) -> Any:
    from audit_tools.battery import run_battery

    return run_battery(_target(resource), **kwargs)


def _search(method: str) -> Callable[..., Any]:
    def run(resource: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        return getattr(_index(resource), method)(*args, **kwargs)

    return run


def _microscope(method: str) -> Callable[..., Any]:
    def run(resource: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        if "microscope" not in resource:
            from audit_tools.microscope import Microscope

            resource["microscope"] = Microscope.open(resource["directory"], target=_target(resource))
        return getattr(resource["microscope"], method)(*args, **kwargs)

    return run


def _sql(resource: dict[str, Any], query: str) -> Any:
    sandbox = _index(resource).sql_sandbox()
    try:
        return sandbox.query(query)
    finally:
        sandbox.close()


TOOLS: dict[str, Callable[..., Any]] = {
    "chat": _probe("chat"), "prefill": _probe("prefill"), "persona": _probe("persona"),
    "complete": _probe("complete"), "battery": _battery,
    "keyword_search": _search("keyword_search"), "semantic_search": _search("semantic_search"),
    "document": _search("document"), "sql": _sql,
    "text_features": _microscope("text_features"), "feature_search": _microscope("search_features"),
    "feature_page": _microscope("feature_page"), "nearest_features": _microscope("nearest_features"),
    "feature_diff": _microscope("feature_diff"), "diff_lens": _microscope("diff_lens"),
    "attribute": _microscope("attribute"), "steer": _microscope("steer"), "logit_lens": _microscope("logit_lens"),
}
