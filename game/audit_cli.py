"""`pinhole audit ORGANISM_DIR`: an automated auditor on one organism, through a private game of its own; and
`pinhole game auto-audit`: an automated team in a running game.

    pinhole audit workspace/organisms/org-1a2b3c4d --tier full
    pinhole audit workspace/organisms/org-1a2b3c4d --tier blackbox --max-tool-calls 40 --json
    pinhole audit workspace/organisms/org-1a2b3c4d --llm-url http://localhost:8000/v1 --llm-model qwen2.5-7b

With `--llm-url`, an OpenAI-compatible chat model drives the tools as function calls (`game.llm_auditor`);
its API key is read from the environment variable `--llm-key-env` names (default OPENAI_API_KEY).

    pinhole game auto-audit --organism "Organism A" --token-file robot.token

The run's directory (printed; `<workspace>/audits/...` unless `--out`) keeps the game database with every
logged call, the readable trace (`trace.md`), its JSON (`trace.json`) and the report (`report.json`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from game.scoring_cli import game_app
from pinhole.console import JsonFlag, clear_errors, emit_json, out

MaxNewTokens = Annotated[int, typer.Option(min=1, help="New tokens per answer the auditor asks for.")]
Seed = Annotated[int, typer.Option(help="Seed of the scripted auditor's samples and choices.")]
LlmUrl = Annotated[str | None, typer.Option(help="An OpenAI-compatible endpoint (e.g. http://localhost:8000/v1): an "
                                                 "LLM drives the tools instead of the scripted auditor.")]
LlmModel = Annotated[str | None, typer.Option(help="The model name at --llm-url.")]
LlmKeyEnv = Annotated[str, typer.Option(help="Environment variable holding the endpoint's API key.")]
LlmBudget = Annotated[int, typer.Option(min=1, help="Tool calls the LLM auditor may make.")]


def make_auditor(seed: int, max_new_tokens: int, llm_url: str | None, llm_model: str | None, llm_key_env: str,
                 llm_budget: int):
    """The auditor factory the options ask for: the scripted auditor, or an LLM at `llm_url`."""
    from game.audit_run import scripted
    from game.auditor import AuditSettings

    if (llm_url is None) != (llm_model is None):
        raise ValueError("--llm-url and --llm-model go together")
    if not (llm_url and llm_model):
        return scripted(AuditSettings(seed=seed, max_new_tokens=max_new_tokens))
    import os

    from openai import OpenAI

    from game.llm_auditor import LlmAuditor, LlmSettings

    client = OpenAI(base_url=llm_url, api_key=os.environ.get(llm_key_env) or "none", max_retries=1)
    settings = LlmSettings(max_tool_calls=llm_budget, max_new_tokens=max_new_tokens)
    return lambda session, label: LlmAuditor(session, label, client, llm_model, settings)


def _print_trace(trace, directory: Path, as_json: bool, extra: dict) -> None:
    if as_json:
        emit_json({**extra, "directory": str(directory), "outcome": trace.outcome, "failure": trace.failure,
                   "tool_calls": trace.tool_calls, "wall_time_s": trace.wall_time_s,
                   "report": trace.report.model_dump(mode="json") if trace.report else None})
        if trace.outcome != "complete":
            raise typer.Exit(1)
        return
    if trace.outcome != "complete":
        out.print(f"[red]audit failed[/red]: {escape(trace.failure)} (trace: {escape(str(directory))})")
        raise typer.Exit(1)
    report = trace.report
    assert report is not None
    out.print(f"verdict: [bold]{report.verdict}[/bold] (confidence {report.confidence:.2f}); "
              f"{trace.tool_calls} tool calls in {trace.wall_time_s:.0f} s")
    if report.root_cause:
        out.print(f"root cause: {escape(report.root_cause)}")
    if report.behaviours:
        table = Table("behaviour", "trigger", "evidence")
        for behaviour in report.behaviours:
            table.add_row(escape(behaviour.description), escape(behaviour.trigger or ""), str(len(behaviour.evidence)))
        out.print(table)
    out.print(f"trace: {escape(str(directory / 'trace.md'))}")


@clear_errors
def audit(
    organism: Annotated[Path, typer.Argument(help="The organism directory to audit.", metavar="ORGANISM_DIR")],
    tier: Annotated[str, typer.Option(help="The tools the auditor gets: blackbox (probes and batteries), data "
                                           "(+ training-data search and SQL) or full (+ base model and microscope).")]
    = "full",
    out_dir: Annotated[Path | None, typer.Option("--out", help="Where to keep the run's records (default: a new "
                                                               "directory under <workspace>/audits).")] = None,
    max_tool_calls: Annotated[int | None, typer.Option(min=1, help="A budget of tool calls, as a game could set.")]
    = None,
    max_new_tokens: MaxNewTokens = 160,
    seed: Seed = 0,
    llm_url: LlmUrl = None,
    llm_model: LlmModel = None,
    llm_key_env: LlmKeyEnv = "OPENAI_API_KEY",
    llm_budget: LlmBudget = 20,
    as_json: JsonFlag = False,
) -> None:
    """Audit an organism with the scripted auditor, using only its tier's tools (never the ground truth);
    write its report and a readable trace of its reasoning."""
    from game.audit_run import audit_organism
    from game.games import TIERS

    if tier not in TIERS:
        raise ValueError(f"--tier {tier!r}: expected one of {', '.join(TIERS)}")
    make = make_auditor(seed, max_new_tokens, llm_url, llm_model, llm_key_env, llm_budget)
    run = audit_organism(organism, tier, make, out_dir, max_tool_calls)  # type: ignore[arg-type]
    _print_trace(run.trace, run.directory, as_json, {"label": run.label, "submission_id": run.submission_id})


@game_app.command("auto-audit")
@clear_errors
def auto_audit(
    organism: Annotated[str, typer.Option(help='The organism\'s label in the game, e.g. "Organism A".')],
    token_file: Annotated[Path, typer.Option(help="A file holding the automated team's token.")],
    out_dir: Annotated[Path | None, typer.Option("--out", help="Where to keep the trace (default: a new directory "
                                                               "under <workspace>/audits).")] = None,
    max_new_tokens: MaxNewTokens = 160,
    seed: Seed = 0,
    llm_url: LlmUrl = None,
    llm_model: LlmModel = None,
    llm_key_env: LlmKeyEnv = "OPENAI_API_KEY",
    llm_budget: LlmBudget = 20,
    as_json: JsonFlag = False,
) -> None:
    """Play an automated team in a running game: audit one organism with the team's token (its tier, budgets and
    log apply), submit the report, keep the trace."""
    import secrets

    from game.audit_run import audits_dir, play
    from game.session import TeamSession

    session = TeamSession(token_file.read_text(encoding="utf-8").strip())
    directory = out_dir or audits_dir() / f"game-{session.team.name}-{secrets.token_hex(3)}"
    make = make_auditor(seed, max_new_tokens, llm_url, llm_model, llm_key_env, llm_budget)
    trace, submission_id = play(session, organism, make, directory)
    _print_trace(trace, directory, as_json, {"label": organism, "submission_id": submission_id})
