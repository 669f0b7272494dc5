"""`pinhole game ...`: the game master's commands for a blind auditing session, and a team's `submit`.

    pinhole game create spring
    pinhole game add-organism spring workspace/organisms/org-1a2b3c4d     # warns if not membership-blind
    pinhole game add-team spring red --tier data                          # prints the team's token, once
    pinhole game start spring --hours 4
    pinhole game submit spring report.json --organism "Organism A" --token-file red.token
    pinhole game close spring && pinhole game reveal spring               # commitments checked, reports judged
    pinhole game leaderboard spring; pinhole game export spring results/

Every command takes `--json`. The game database is `<workspace>/game.duckdb`.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from game.scoring_cli import game_app
from pinhole.console import JsonFlag, clear_errors, console, emit_json, out

Name = Annotated[str, typer.Argument(help="The game's name.", metavar="GAME")]


def _done(as_json: bool, document: dict, message: str) -> None:
    if as_json:
        emit_json(document)
    else:
        out.print(message)


@game_app.command("create")
@clear_errors
def create(name: Name, as_json: JsonFlag = False) -> None:
    """Create a game (a draft: add organisms and teams, then start it)."""
    from game.games import create_game

    game_id = create_game(name)
    _done(as_json, {"game": name, "game_id": game_id, "state": "draft"}, f"created game {escape(name)} (draft)")


@game_app.command("add-organism")
@clear_errors
def add_organism(name: Name, organism: Annotated[Path, typer.Argument(help="An organism directory.",
                                                                     metavar="ORGANISM_DIR")],
                 as_json: JsonFlag = False) -> None:
    """Add an organism to a draft game; it gets a neutral label, dealt again at random over the game's organisms."""
    from game.games import add_organism as add

    warnings = add(name, organism)
    for warning in warnings:
        console.print(f"[yellow]warning:[/yellow] {escape(warning)}")
    _done(as_json, {"game": name, "organism": str(organism), "warnings": warnings},
          f"added {escape(str(organism))} to {escape(name)}")


@game_app.command("add-team")
@clear_errors
def add_team(name: Name, team: Annotated[str, typer.Argument(help="The team's name.")],
             tier: Annotated[str, typer.Option(help="blackbox, data or full.")] = "blackbox",
             max_tool_calls: Annotated[int | None, typer.Option(min=1, help="A budget of tool calls (default: "
                                                                "none).")] = None,
             max_generated_tokens: Annotated[int | None, typer.Option(min=1, help="A budget of tokens the models "
                                                                      "generate for the team (default: none).")] = None,
             as_json: JsonFlag = False) -> None:
    """Add a team with a tier on every organism; prints its token once (only a hash is kept)."""
    from game.games import add_team as add

    created, token = add(name, team, tier, max_tool_calls=max_tool_calls,  # type: ignore[arg-type]
                         max_generated_tokens=max_generated_tokens)
    _done(as_json, {"game": name, "team": team, "team_id": created.team_id, "tier": tier, "token": token},
          f"team {escape(team)} ({tier}); its token, shown once: [bold]{escape(token)}[/bold]")


@game_app.command("start")
@clear_errors
def start(name: Name, hours: Annotated[float, typer.Option(min=0.01, max=24 * 30, help="Time until the deadline.")] = 4,
          as_json: JsonFlag = False) -> None:
    """Start a draft game; submissions are accepted until the deadline (server time)."""
    from game.games import start_game

    deadline = start_game(name, timedelta(hours=hours))
    _done(as_json, {"game": name, "state": "running", "deadline_utc": deadline.isoformat()},
          f"{escape(name)} is running until {deadline:%Y-%m-%d %H:%M} UTC")


@game_app.command("close")
@clear_errors
def close(name: Name, as_json: JsonFlag = False) -> None:
    """Close a running game: no more submissions or tool calls."""
    from game.games import close_game

    close_game(name)
    _done(as_json, {"game": name, "state": "closed"}, f"{escape(name)} is closed")


@game_app.command("submit")
@clear_errors
def submit(name: Name, report: Annotated[Path, typer.Argument(help="The report (JSON).", metavar="REPORT")],
           organism: Annotated[str, typer.Option(help='The organism\'s label, e.g. "Organism A".')],
           token_file: Annotated[Path, typer.Option(help="A file holding the team's token.")],
           as_json: JsonFlag = False) -> None:
    """Submit a team's report on one organism (a new version; earlier ones are kept)."""
    from game.games import authenticate
    from game.games import submit as submit_report
    from game.report import read_report

    parsed = read_report(report)
    team = authenticate(token_file.read_text(encoding="utf-8").strip())
    if team.game_id != _game_id(name):
        raise PermissionError("this token belongs to another game")
    submission = submit_report(team, organism, parsed)
    _done(as_json, submission.model_dump(mode="json"),
          f"submitted version {submission.version} on {escape(organism)} ({submission.submission_id})")


def _game_id(name: str) -> str:
    from game.games import game_row
    from game.store import transaction

    with transaction() as c:
        return game_row(c, name)[0]


@game_app.command("reveal")
@clear_errors
def reveal(name: Name, as_json: JsonFlag = False) -> None:
    """Reveal a closed game: check every organism's commitment, judge every submission."""
    from game.judging import reveal as reveal_game

    checks = reveal_game(name)
    if as_json:
        emit_json({"game": name, "commitments": [c.model_dump() for c in checks]})
        return
    for check in checks:
        colour = "green" if check.verified else "red"
        out.print(f"[{colour}]{'verified' if check.verified else 'NOT VERIFIED'}[/{colour}] {escape(check.label)} "
                  f"({check.organism_id}): {escape(check.detail)}")


@game_app.command("score")
@clear_errors
def score(name: Name, as_json: JsonFlag = False) -> None:
    """Judge any submission of a revealed game not judged yet (the reveal judges them all)."""
    from game.judging import judge

    added = judge(name, "embedding")
    _done(as_json, {"game": name, "matcher": "embedding", "judged": added}, f"{added} new judgement(s)")


@game_app.command("rescore")
@clear_errors
def rescore(name: Name, matcher: Annotated[str, typer.Option(help="embedding or embedding-strict.")]
            = "embedding-strict",
            llm_url: Annotated[str | None, typer.Option(help="Judge with a chat model on this OpenAI-compatible "
                                                        "server instead (e.g. http://localhost:8000/v1).")] = None,
            llm_model: Annotated[str | None, typer.Option(help="The judge model's name on --llm-url.")] = None,
            as_json: JsonFlag = False) -> None:
    """Judge every submission again with another matcher or an LLM judge; every earlier judgement is kept, and
    the agreement with the embedding matcher is reported."""
    from game.judging import agreement, judge

    judge_object = None
    if llm_url or llm_model:
        if not (llm_url and llm_model):
            raise ValueError("an LLM judge needs both --llm-url and --llm-model")
        from game.llm_judge import LLMJudge

        judge_object = LLMJudge(llm_url, llm_model)
        matcher = judge_object.name
    added = judge(name, matcher, matcher=judge_object)
    agreed = agreement(name, "embedding", matcher)
    _done(as_json, {"game": name, "matcher": matcher, "judged": added, "agreement": agreed.model_dump()},
          f"{added} judgement(s) with {escape(matcher)}; agreement with the embedding matcher on "
          f"{agreed.items} item(s): {agreed.item_agreement}")


@game_app.command("override")
@clear_errors
def override(name: Name, team: Annotated[str, typer.Argument(help="The team's name.")],
             organism: Annotated[str, typer.Argument(help="The organism's label.")],
             new_score: Annotated[float, typer.Argument(help="The score to give, in [0, 1].", metavar="SCORE")],
             reason: Annotated[str, typer.Option(help="Why (kept in the audit trail).")],
             by: Annotated[str, typer.Option(help="Who overrides.")] = "game master",
             as_json: JsonFlag = False) -> None:
    """Override the score of a team's latest submission on an organism, with a reason."""
    from game.judging import latest_submission
    from game.judging import override as override_score

    submission_id = latest_submission(name, team, organism)
    override_id = override_score(name, submission_id, new_score, reason, by)
    _done(as_json, {"game": name, "override_id": override_id, "submission_id": submission_id, "score": new_score},
          f"{escape(team)} on {escape(organism)}: score {new_score} ({override_id})")


@game_app.command("leaderboard")
@clear_errors
def leaderboard(name: Name, matcher: Annotated[str, typer.Option(help="Whose judgements to show.")] = "embedding",
                as_json: JsonFlag = False) -> None:
    """Each team's latest submission per organism, best first (after the reveal)."""
    from game.judging import leaderboard as board

    rows = board(name, matcher)
    if as_json:
        emit_json({"game": name, "matcher": matcher, "rows": [r.model_dump() for r in rows]})
        return
    grid = Table(title=f"{escape(name)}: leaderboard ({escape(matcher)})")
    for column in ("team", "organism", "version", "score", "status", "minutes to root cause"):
        grid.add_column(column)
    for r in rows:
        grid.add_row(escape(r.team), escape(r.label), str(r.version), "-" if r.score is None else f"{r.score:.3f}",
                     r.status, "-" if r.minutes_to_root_cause is None else f"{r.minutes_to_root_cause:.1f}")
    out.print(grid)


@game_app.command("export")
@clear_errors
def export(name: Name, out_dir: Annotated[Path, typer.Argument(help="Where to write the CSV and JSON.",
                                                               metavar="OUT_DIR")],
           as_json: JsonFlag = False) -> None:
    """Write the leaderboard (CSV) and the results with the commitment checks (JSON), after the reveal."""
    from game.judging import export as export_game

    files = export_game(name, out_dir)
    _done(as_json, {"game": name, "files": [str(f) for f in files]},
          "wrote " + ", ".join(escape(str(f)) for f in files))


@game_app.command("status")
@clear_errors
def status(name: Name, as_json: JsonFlag = False) -> None:
    """The game master's view: state, deadline, organisms (label, id, warnings), teams and their submissions."""
    from game.games import game_status

    document = game_status(name)
    if as_json:
        emit_json(document)
        return
    out.print(f"[bold]{escape(name)}[/bold]: {document['state']}"
              + (f", deadline {document['deadline_utc']} UTC" if document["deadline_utc"] else ""))
    for o in document["organisms"]:
        out.print(f"  {escape(o['label'])}: {o['organism_id']}"
                  + "".join(f" [yellow]({escape(w)})[/yellow]" for w in o["warnings"]))
    for t in document["teams"]:
        out.print(f"  team {escape(t['name'])}: {t['submissions']} submission(s), {t['tool_calls']} tool call(s)"
                  + (" [red]revoked[/red]" if t["revoked"] else ""))
