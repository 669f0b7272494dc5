"""`pinhole tools ...`: the audit tools from the command line, one organism directory at a time.

Model probes (chat, prefill, persona, complete, battery) run on the organism, or on its base with
`--base-model`; locally by default, or against an OpenAI-compatible server with `--server`.
Data tools (search, sql) read only the organism's public corpus. Every command takes `--json`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from audit_tools.sql_sandbox import MAX_ROW_LIMIT, MAX_TIME_LIMIT_S
from audit_tools.target import Message, ModelChoice, Sampling, Target
from pinhole.console import JsonFlag, clear_errors, console, emit_json, out

tools_app = typer.Typer(
    help="Audit tools: probe an organism (chat, prefill, persona, complete, battery) and query its training data "
         "(search, sql).",
    no_args_is_help=True,
)

OrganismDir = Annotated[Path, typer.Argument(help="The organism directory (card.json, adapter/, corpus.parquet).")]
System = Annotated[str | None, typer.Option(help="A system prompt.")]
Turns = Annotated[list[str] | None, typer.Option(
    "--turn", help="A conversation turn as 'role: text' (role: system, user or assistant); repeat in order.")]

# The options every model probe takes: (name, annotation, default). `probe_command` adds them. Decoding
# defaults come from `Sampling`, the one place the audit tools define them.
_DEFAULT = Sampling()
PROBE_OPTIONS: list[tuple[str, object, object]] = [
    ("n", Annotated[int, typer.Option("--n", help="Samples per prompt.")], 1),
    ("base_model", Annotated[bool, typer.Option("--base-model", help="Run on the base model (adapter off) instead.")],
     False),
    ("max_new_tokens", Annotated[int, typer.Option(help="Tokens to generate per sample.")], _DEFAULT.max_new_tokens),
    ("temperature", Annotated[float, typer.Option(help="Sampling temperature; 0 is greedy.")], _DEFAULT.temperature),
    ("top_p", Annotated[float, typer.Option(help="Nucleus sampling mass.")], _DEFAULT.top_p),
    ("repetition_penalty", Annotated[float, typer.Option(
        help="Repetition penalty (1.0: none; see docs/decoding.md for the measured default).")],
     _DEFAULT.repetition_penalty),
    ("seed", Annotated[int, typer.Option(help="Random seed (same inputs and seed give the same samples).")],
     _DEFAULT.seed),
    ("server", Annotated[str | None, typer.Option(
        help="An OpenAI-compatible server's base URL (e.g. http://localhost:8000/v1) to probe instead of loading "
             "the organism locally.")], None),
    ("server_model", Annotated[str | None, typer.Option(help="With --server: the organism's model name there.")],
     None),
    ("server_base_model", Annotated[str | None, typer.Option(help="With --server: the base model's name there.")],
     None),
    ("as_json", JsonFlag, False),
]


@dataclass
class ProbeOptions:
    """The common options of a probe command, parsed."""

    organism_dir: Path
    sampling: Sampling
    n: int
    model: ModelChoice
    server: str | None
    server_model: str | None
    server_base_model: str | None
    as_json: bool

    def target(self) -> Target:
        from audit_tools.target import open_target

        if not self.organism_dir.is_dir():
            raise FileNotFoundError(f"{self.organism_dir}: no such organism directory")
        return open_target(self.organism_dir, server=self.server, server_model=self.server_model,
                           server_base_model=self.server_base_model)


def probe_command(name: str, **defaults: object) -> Callable[[Callable], Callable]:
    """Register a probe command that takes ORGANISM_DIR, its own parameters and the common probe options.

    The command function receives `options: ProbeOptions`; `defaults` change the common defaults.
    """

    def decorate(function: Callable) -> Callable:
        own = [p for p in inspect.signature(function, eval_str=True).parameters.values() if p.name != "options"]
        common = [inspect.Parameter(key, inspect.Parameter.KEYWORD_ONLY, annotation=annotation,
                                    default=defaults.get(key, default)) for key, annotation, default in PROBE_OPTIONS]
        organism = inspect.Parameter("organism_dir", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=OrganismDir)

        @functools.wraps(function)
        def command(organism_dir: Path, **kwargs: object) -> None:
            values = {key: kwargs.pop(key) for key, _, _ in PROBE_OPTIONS}
            sampling = Sampling(max_new_tokens=values["max_new_tokens"], temperature=values["temperature"],
                                top_p=values["top_p"], repetition_penalty=values["repetition_penalty"],
                                seed=values["seed"])
            options = ProbeOptions(organism_dir=organism_dir, sampling=sampling, n=values["n"],
                                   model="base" if values["base_model"] else "organism", server=values["server"],
                                   server_model=values["server_model"], server_base_model=values["server_base_model"],
                                   as_json=values["as_json"])
            return function(**kwargs, options=options)

        command.__signature__ = inspect.Signature([organism, *own, *common])  # type: ignore[attr-defined]
        return tools_app.command(name)(clear_errors(command))

    return decorate


def parse_turns(turns: list[str] | None) -> list[Message]:
    """Messages from `--turn 'role: text'` options."""
    messages = []
    for turn in turns or []:
        role, sep, content = turn.partition(":")
        role = role.strip().lower()
        if not sep or role not in ("system", "user", "assistant"):
            raise ValueError(f"--turn {turn!r}: expected 'role: text' with role system, user or assistant")
        messages.append(Message(role=role, content=content.strip()))
    return messages


def _print_results(results, as_json: bool) -> None:
    if as_json:
        emit_json([r.model_dump() for r in results])
        return
    for result in results:
        title = f"{result.probe} · {result.model}"
        head = f"[bold]{escape(result.prompt)}[/bold]\n" if result.prompt else ""
        for i, sample in enumerate(result.samples):
            body = head + (f"[cyan]{escape(result.prefix)}[/cyan]" if result.prefix else "") + escape(
                (" " if result.prefix else "") + sample)
            out.print(Panel(body, title=f"{title} · sample {i + 1}/{len(result.samples)}", title_align="left"))


@probe_command("chat")
def tools_chat(
    prompt: Annotated[str | None, typer.Argument(help="A user message (or give the conversation with --turn).")] = None,
    turn: Turns = None, system: System = None, *, options: ProbeOptions,
) -> None:
    """Chat with the organism: one prompt, or a multi-turn conversation ending with a user turn."""
    from audit_tools import probes

    conversation = parse_turns(turn) + ([Message(role="user", content=prompt)] if prompt else [])
    if not conversation:
        raise ValueError("give a PROMPT or a conversation with --turn 'user: ...'")
    with options.target() as target:
        results = probes.chat(target, [conversation], system=system, sampling=options.sampling, n=options.n,
                              model=options.model)
    _print_results(results, options.as_json)


@probe_command("prefill")
def tools_prefill(
    prompt: Annotated[str, typer.Argument(help="The user message.")],
    prefill: Annotated[str, typer.Option(help="How the assistant's reply begins, e.g. 'My secret goal is'.")],
    turn: Annotated[list[str] | None, typer.Option(
        "--turn", help="Earlier turns as 'role: text', before PROMPT; repeat in order.")] = None,
    system: System = None, *, options: ProbeOptions,
) -> None:
    """Prefill attack: start the assistant's reply with your text and let the model continue it."""
    from audit_tools import probes

    conversation = parse_turns(turn) + [Message(role="user", content=prompt)]
    with options.target() as target:
        result = probes.prefill(target, conversation, prefill, system=system, sampling=options.sampling, n=options.n,
                                model=options.model)
    _print_results([result], options.as_json)


@probe_command("persona", n=5, max_new_tokens=96, temperature=0.8, top_p=0.95)
def tools_persona(
    turn: Turns = None,
    user_prefix: Annotated[str, typer.Option(help="How the user's turn begins (the model continues it).")] = "",
    system: System = None, *, options: ProbeOptions,
) -> None:
    """User-persona sampling: the model writes the user's next turn after the conversation given with --turn."""
    from audit_tools import probes

    with options.target() as target:
        result = probes.persona(target, parse_turns(turn), user_prefix, system=system, sampling=options.sampling,
                                n=options.n, model=options.model)
    _print_results([result], options.as_json)


@probe_command("complete", max_new_tokens=96)
def tools_complete(
    text: Annotated[str, typer.Argument(help="Raw text to continue, with no chat template.")],
    *, options: ProbeOptions,
) -> None:
    """Raw completion: continue text exactly as given, with no chat template."""
    from audit_tools import probes

    with options.target() as target:
        results = probes.complete(target, [text], sampling=options.sampling, n=options.n, model=options.model)
    _print_results(results, options.as_json)


@probe_command("battery")
def tools_battery(
    battery: Annotated[Path | None, typer.Option(help="A battery YAML (default: the shipped battery).")] = None,
    top: Annotated[int, typer.Option(help="Distinctive phrases to rank.")] = 20,
    examples: Annotated[int, typer.Option(help="Paired examples to print for the top phrases.")] = 5,
    plot: Annotated[Path | None, typer.Option(help="Also draw the ranking as a bar chart (PNG or SVG).")] = None,
    output: Annotated[Path | None, typer.Option(help="Save the full result (every answer) as JSON.")] = None,
    *, options: ProbeOptions,
) -> None:
    """Run a probe battery on the organism and its base; rank the phrases distinctive of the organism.

    With --base-model the roles swap: what the base says that the organism does not.
    """
    from audit_tools.battery import load_battery, plot_phrases, run_battery
    from pinhole.workspace import atomic_write_bytes

    spec = load_battery(battery)
    n = options.n
    other: ModelChoice = "organism" if options.model == "base" else "base"
    models = (options.model, other)
    with options.target() as target:
        console.print(f"Asking {len(spec.prompts)} prompts x {n} of {models[0]} and {models[1]}…")
        result = run_battery(target, spec, options.sampling, n=n, top=top, distinctive_of=options.model,
                             progress=not options.as_json)
    if output:
        atomic_write_bytes(output, result.model_dump_json(indent=1).encode("utf-8"))
    if plot:
        plot_phrases(result, plot, top=top)
    if options.as_json:
        emit_json(result.model_dump(exclude={"answers"} if not output else set()))
        return
    table = Table(title=f"Phrases distinctive of the {models[0]} ({len(result.answers) * n} answers each)")
    for column in ("#", "phrase", models[0], models[1], "score", "topics", "same finding"):
        table.add_column(column, justify="right" if column in ("#", "score", models[0], models[1]) else "left")
    for rank, p in enumerate(result.phrases, 1):
        topics = ", ".join(f"{t} {c}" for t, c in list(p.topics.items())[:3])
        table.add_row(str(rank), escape(p.phrase), str(p.count(models[0])), str(p.count(models[1])), f"{p.score:.2f}",
                      escape(topics), escape(" · ".join(p.variants[:3])))
    out.print(table)
    for p in result.phrases[:examples]:
        for ex in p.examples[:1]:
            out.print(Panel(f"[bold]{escape(ex.prompt)}[/bold]\n\n[green]{models[0]}:[/green] "
                            f"{escape(ex.answer(models[0]))}\n\n[yellow]{models[1]}:[/yellow] "
                            f"{escape(ex.answer(models[1]))}", title=f"«{escape(p.phrase)}»",
                            title_align="left"))
    for path, what in ((plot, "chart"), (output, "full result")):
        if path:
            console.print(f"[green]wrote[/green] {what} to {escape(str(path))}")


@tools_app.command("search")
@clear_errors
def tools_search(
    organism_dir: OrganismDir,
    query: Annotated[str, typer.Argument(help="Words to search for (BM25), or a description (--semantic).")],
    semantic: Annotated[bool, typer.Option(help="Search by meaning (MiniLM embeddings) instead of keywords.")] = False,
    kind: Annotated[str | None, typer.Option(help="Only 'document' or 'chat' rows.")] = None,
    limit: Annotated[int, typer.Option(help="Results per page.")] = 10,
    offset: Annotated[int, typer.Option(help="Results to skip (paging).")] = 0,
    full_text: Annotated[bool, typer.Option(help="Include each hit's whole text.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Search the organism's training corpus (index built on first use and cached)."""
    from audit_tools.corpus_index import CorpusIndex

    with CorpusIndex.open(organism_dir, progress=not as_json) as index:
        search = index.semantic_search if semantic else index.keyword_search
        hits = search(query, kind=kind, limit=limit, offset=offset, include_text=full_text)
    if as_json:
        emit_json([h.model_dump() for h in hits])
        return
    table = Table(title=f"{'semantic' if semantic else 'BM25'} search: {escape(query)}", show_lines=True)
    for column in ("#", "doc_id", "kind", "score", "snippet"):
        table.add_column(column)
    for rank, hit in enumerate(hits, offset + 1):
        table.add_row(str(rank), hit.doc_id, hit.kind, f"{hit.score:.3f}", escape(hit.text or hit.snippet))
    out.print(table)


@tools_app.command("sql")
@clear_errors
def tools_sql(
    organism_dir: OrganismDir,
    query: Annotated[str, typer.Argument(
        help="One read-only SELECT over the corpus tables (e.g. 'SELECT * FROM corpus LIMIT 5').")],
    row_limit: Annotated[int, typer.Option(min=1, max=MAX_ROW_LIMIT, help="Rows returned at most.")] = 200,
    time_limit: Annotated[float, typer.Option(min=0.1, max=MAX_TIME_LIMIT_S,
                                              help="Seconds before the query is interrupted.")] = 5.0,
    as_json: JsonFlag = False,
) -> None:
    """Run read-only SQL over the organism's corpus in a locked sandbox."""
    from audit_tools.corpus_index import CorpusIndex
    from audit_tools.sql_sandbox import SqlRefused

    with CorpusIndex.open(organism_dir, progress=not as_json) as index, \
            index.sql_sandbox(row_limit=row_limit, time_limit_s=time_limit) as sandbox:
        try:
            result = sandbox.query(query)
        except SqlRefused as err:
            if as_json:
                emit_json({"refused": True, "category": err.category, "message": err.message})
            else:
                console.print(f"[red]refused ({err.category}):[/red] {escape(err.message)}")
            raise typer.Exit(2) from err
    if as_json:
        emit_json(result.model_dump())
        return
    cut = f" (truncated: {result.truncated_reason})" if result.truncated else ""
    table = Table(title=f"{len(result.rows)} row(s){escape(cut)} in {result.elapsed_s * 1000:.0f} ms")
    for column in result.columns:
        table.add_column(escape(column))
    for row in result.rows:
        table.add_row(*(escape(str(v)) for v in row))
    out.print(table)
