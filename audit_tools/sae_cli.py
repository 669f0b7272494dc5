"""`pinhole sae ...`: train, import and index SAEs, and use the microscope from the command line.

Every command takes an organism directory; the SAE is the organism's only one unless `--sae` names
it. Every reading command takes `--json`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from audit_tools.target import Sampling
from pinhole.console import JsonFlag, clear_errors, console, emit_json, out

sae_app = typer.Typer(
    help="The microscope: sparse autoencoders on an organism's residual stream (train with sae-lens, index the "
         "corpus), feature search and pages, model diffing, attribution, steering, the logit lens.",
    no_args_is_help=True,
)

OrganismDir = Annotated[Path, typer.Argument(help="The organism directory (card.json, adapter/, corpus.parquet).")]
SaeName = Annotated[str | None, typer.Option("--sae", help="Which SAE of the organism (default: its only one).")]
Chat = Annotated[bool, typer.Option(help="Read TEXT as a user's chat turn (through the chat template).")]


def _scope(organism_dir: Path, sae: str | None):
    from audit_tools.microscope import Microscope

    if not organism_dir.is_dir():
        raise FileNotFoundError(f"{organism_dir}: no such organism directory")
    return Microscope.open(organism_dir, sae)


def _print_table(title: str, columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    out.print(table)


def _highlight(tokens: list[str], activations: list[float]) -> Text:
    """Tokens with a background as strong as their activation."""
    text = Text()
    peak = max(activations, default=0.0) or 1.0
    for token, value in zip(tokens, activations, strict=True):
        level = int(55 + 200 * value / peak) if value > 0 else 0
        text.append(token.replace("\n", "⏎"), style=f"on rgb({level},{level // 3},0)" if level else "")
    return text


@sae_app.command("train")
@clear_errors
def sae_train(
    organism_dir: OrganismDir,
    layer: Annotated[int | None, typer.Option(
        help="Decoder layer whose output is read (default: the middle of the layers the adapter changes).")] = None,
    tokens: Annotated[int, typer.Option(help="Activation vectors the trainer steps over.")] = 2_000_000,
    cached_tokens: Annotated[int, typer.Option(help="Distinct activations cached from the corpus.")] = 250_000,
    architecture: Annotated[str, typer.Option(help="A sae-lens architecture: batchtopk, jumprelu, topk, standard, "
                                                   "gated, matryoshka_batchtopk.")] = "batchtopk",
    expansion: Annotated[int, typer.Option(help="Features per residual dimension.")] = 4,
    k: Annotated[float, typer.Option(help="Active features per token (topk family).")] = 48,
    sparsity_coefficient: Annotated[float, typer.Option(help="L1/L0 coefficient (standard, jumprelu).")] = 1.0,
    learning_rate: Annotated[float, typer.Option(help="Adam learning rate.")] = 2e-3,
    batch_tokens: Annotated[int, typer.Option(help="Activations per optimiser step (smaller: more steps on the "
                                                   "same tokens).")] = 1024,
    name: Annotated[str | None, typer.Option(help="The SAE's name (default: layer, architecture, settings key).")]
    = None,
    index: Annotated[bool, typer.Option(help="Build the feature index afterwards.")] = True,
    as_json: JsonFlag = False,
) -> None:
    """Train an SAE with sae-lens on the organism's residual stream over its corpus (cached, resumable)."""
    from audit_tools.feature_index import build_feature_index
    from audit_tools.sae_store import saes_root
    from audit_tools.sae_training import SaeSettings, train_sae
    from audit_tools.target import LocalTarget

    settings = SaeSettings(layer=layer, training_tokens=tokens, cached_tokens=cached_tokens,
                           architecture=architecture, expansion=expansion, k=k,
                           sparsity_coefficient=sparsity_coefficient, learning_rate=learning_rate,
                           batch_tokens=batch_tokens)
    target = LocalTarget.from_organism(organism_dir)
    info = train_sae(organism_dir, settings, name=name, target=target, progress=not as_json)
    if index:
        build_feature_index(organism_dir, saes_root(organism_dir) / info.name, target=target, progress=not as_json)
    if as_json:
        emit_json(info.model_dump())
        return
    q, t = info.quality, info.training
    out.print(f"[green]SAE[/green] {escape(info.name)} (layer {info.layer}, {info.architecture}, {info.d_sae} features)"
              f" in {escape(str(saes_root(organism_dir) / info.name))}")
    if t:
        out.print(f"trained on {t.tokens_trained:,} activations ({t.cached_tokens:,} distinct) in {t.steps} steps: "
                  f"{t.activation_seconds:.0f} s caching, {t.training_seconds:.0f} s training")
    if q:
        out.print(f"explained variance {q.explained_variance:.3f} · L0 {q.l0:.1f} · dead {q.dead_fraction:.1%} · "
                  f"LM loss recovered {q.lm_loss_recovered:.3f} (held-out, {q.eval_tokens:,} tokens)")


@sae_app.command("import")
@clear_errors
def sae_import(
    organism_dir: OrganismDir,
    source: Annotated[Path, typer.Argument(help="A sae-lens SAE folder (cfg.json + sae_weights.safetensors).")],
    layer: Annotated[int | None, typer.Option(help="Its layer, if its hook name does not say.")] = None,
    name: Annotated[str | None, typer.Option(help="The name to give it.")] = None,
    index: Annotated[bool, typer.Option(help="Build the feature index afterwards.")] = True,
) -> None:
    """Import a pretrained sae-lens SAE (e.g. Gemma Scope for a Gemma base) beside the organism."""
    from audit_tools.feature_index import build_feature_index
    from audit_tools.sae_store import import_sae, saes_root

    info = import_sae(organism_dir, source, name=name, layer=layer)
    if index:
        build_feature_index(organism_dir, saes_root(organism_dir) / info.name)
    out.print(f"[green]imported[/green] {escape(info.name)} (layer {info.layer}, {info.d_sae} features)")


@sae_app.command("index")
@clear_errors
def sae_index(organism_dir: OrganismDir, sae: SaeName = None, as_json: JsonFlag = False) -> None:
    """Build the feature index of the SAE over the organism's corpus (cached: rebuilt only when stale)."""
    from audit_tools.feature_index import build_feature_index
    from audit_tools.sae_store import sae_dir

    info = build_feature_index(organism_dir, sae_dir(organism_dir, sae), progress=not as_json)
    if as_json:
        emit_json(info.model_dump())
        return
    out.print(f"[green]indexed[/green] {info.rows:,} rows, {info.tokens:,} tokens ({info.seconds:.0f} s for the pass)")


@sae_app.command("list")
@clear_errors
def sae_list(organism_dir: OrganismDir, as_json: JsonFlag = False) -> None:
    """The organism's SAEs, with their quality."""
    from audit_tools.sae_store import list_saes

    infos = list_saes(organism_dir)
    if as_json:
        emit_json([i.model_dump() for i in infos])
        return
    _print_table(f"SAEs of {organism_dir}",
                 ("name", "layer", "architecture", "features", "explained var.", "L0", "dead", "loss recovered"),
                 [(escape(i.name), str(i.layer), i.architecture, str(i.d_sae),
                   *((f"{i.quality.explained_variance:.3f}", f"{i.quality.l0:.1f}", f"{i.quality.dead_fraction:.1%}",
                      f"{i.quality.lm_loss_recovered:.3f}") if i.quality else ("-",) * 4)) for i in infos])


@sae_app.command("features")
@clear_errors
def sae_features(
    organism_dir: OrganismDir,
    text: Annotated[str, typer.Argument(help="The text to read.")],
    position: Annotated[list[int] | None, typer.Option(help="Only these token positions (repeat; -1 is the last).")]
    = None,
    top: Annotated[int, typer.Option(help="Features to list.")] = 20,
    rank_by: Annotated[str, typer.Option(help="specificity (mean activation x log 1/density), activation (peak) "
                                              "or relative (peak over the feature's corpus peak).")] = "specificity",
    include_dense: Annotated[bool, typer.Option(help="Keep features that fire on over a tenth of tokens.")] = False,
    base_model: Annotated[bool, typer.Option("--base-model", help="Read the base model's activations instead.")]
    = False,
    chat: Chat = False, sae: SaeName = None, as_json: JsonFlag = False,
) -> None:
    """Text -> features: the SAE features most active on a text, the text coloured by the top one."""
    scope = _scope(organism_dir, sae)
    result = scope.text_features(text, positions=position, top=top, rank_by=rank_by,  # type: ignore[arg-type]
                                 max_density=1.0 if include_dense else 0.1, chat=chat,
                                 model="base" if base_model else "organism")
    if as_json:
        emit_json(result.model_dump())
        return
    _print_table(f"Features of the text (ranked by {result.rank_by})",
                 ("#", "feature", "label", "max act.", "mean act.", "density", "score"),
                 [(str(rank), str(f.feature_id), escape(f.label), f"{f.max_activation:.3f}", f"{f.mean_activation:.3f}",
                   f"{f.density:.2e}", f"{f.score:.3f}") for rank, f in enumerate(result.features, 1)])
    if result.features:
        first = result.features[0]
        out.print(Panel(_highlight(result.tokens, first.token_activations), title=f"tokens by feature "
                        f"{first.feature_id}", title_align="left"))


@sae_app.command("search")
@clear_errors
def sae_search(
    organism_dir: OrganismDir,
    query: Annotated[str, typer.Argument(help="Words to find in feature labels and top contexts.")],
    limit: Annotated[int, typer.Option(help="Features to list.")] = 20,
    sae: SaeName = None, as_json: JsonFlag = False,
) -> None:
    """Search features by the words of their labels and top activating contexts (BM25)."""
    hits = _scope(organism_dir, sae).search_features(query, limit)
    if as_json:
        emit_json([h.model_dump() for h in hits])
        return
    _print_table(f"Features matching {query!r}", ("feature", "label", "density", "score"),
                 [(str(h.feature_id), escape(h.label), f"{h.density:.2e}", f"{h.score:.3f}") for h in hits])


@sae_app.command("page")
@clear_errors
def sae_page(
    organism_dir: OrganismDir,
    feature: Annotated[int, typer.Argument(help="The feature id.")],
    contexts: Annotated[int, typer.Option(help="Top contexts to show.")] = 10,
    plot: Annotated[Path | None, typer.Option(help="Draw the activation histogram (PNG or SVG).")] = None,
    sae: SaeName = None, as_json: JsonFlag = False,
) -> None:
    """A feature's page: label, density, activation histogram, top contexts, logit effects, nearest features."""
    page = _scope(organism_dir, sae).feature_page(feature, contexts=contexts)
    if plot:
        _plot_histogram(page, plot)
    if as_json:
        emit_json(page.model_dump())
        return
    nearest = "; ".join(f"#{n.feature_id} ({n.cosine:.2f}) {n.label}" for n in page.nearest)
    out.print(Panel(f"[bold]{escape(page.label)}[/bold]\ndensity {page.density:.2e} ({page.fire_count:,} tokens) · "
                    f"max {page.max_activation:.3f} · mean {page.mean_activation:.3f}\n"
                    f"promotes: {escape(' '.join(repr(t) for t, _ in page.promoted))}\n"
                    f"suppresses: {escape(' '.join(repr(t) for t, _ in page.suppressed))}\n"
                    f"nearest: {escape(nearest)}",
                    title=f"feature {page.feature_id}", title_align="left"))
    for c in page.contexts:
        out.print(Text(f"{c.doc_id} · {c.peak_activation:.3f}  ").append_text(
            _highlight([t.token for t in c.tokens], [t.activation for t in c.tokens])))
    if plot:
        console.print(f"[green]wrote[/green] the histogram to {escape(str(plot))}")


def _plot_histogram(page, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    edges = page.histogram_edges
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.bar(edges[:-1], page.histogram_counts, width=[b - a for a, b in zip(edges[:-1], edges[1:], strict=True)],
           align="edge")
    ax.set_xscale("log")
    ax.set_xlabel("activation")
    ax.set_ylabel("tokens")
    ax.set_title(f"feature {page.feature_id}: {page.label}"[:80], fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


@sae_app.command("diff")
@clear_errors
def sae_diff(
    organism_dir: OrganismDir,
    top: Annotated[int, typer.Option(help="Features to list.")] = 20,
    sae: SaeName = None, as_json: JsonFlag = False,
) -> None:
    """Model diffing: the features that fire more on the organism than on its base, on ordinary text."""
    result = _scope(organism_dir, sae).feature_diff(top=top)
    if as_json:
        emit_json(result.model_dump())
        return
    _print_table(f"Organism minus base, mean activation over {result.n_tokens:,} tokens of ordinary text",
                 ("feature", "label", "organism", "base", "difference"),
                 [(str(f.feature_id), escape(f.label), f"{f.organism_mean:.4f}", f"{f.base_mean:.4f}",
                   f"{f.difference:+.4f}") for f in result.features])


@sae_app.command("lens")
@clear_errors
def sae_lens(
    organism_dir: OrganismDir,
    first_tokens: Annotated[int, typer.Option(help="Positions read per text (after its attention sinks).")] = 5,
    top: Annotated[int, typer.Option(help="Tokens and features to list.")] = 20,
    save_vector: Annotated[Path | None, typer.Option(help="Save the difference vector as JSON (for `steer`).")]
    = None,
    sae: SaeName = None, as_json: JsonFlag = False,
) -> None:
    """The activation-difference lens (Minder et al.): organism minus base residual, read through the unembedding."""
    from pinhole.workspace import atomic_write_json

    lens = _scope(organism_dir, sae).diff_lens(first_tokens=first_tokens, top=top)
    if save_vector:
        atomic_write_json(save_vector, lens.vector)
    if as_json:
        emit_json(lens.model_dump())
        return
    out.print(Panel(f"norm {lens.norm:.3f} (mean residual norm {lens.mean_residual_norm:.1f}), layer {lens.layer}, "
                    f"{lens.n_texts} texts x {lens.first_tokens} tokens\n"
                    f"[green]promotes:[/green] {escape(' '.join(repr(t) for t, _ in lens.promoted))}\n"
                    f"[red]suppresses:[/red] {escape(' '.join(repr(t) for t, _ in lens.suppressed))}\n"
                    "nearest features:\n" + "\n".join(f"  #{n.feature_id} ({n.cosine:.2f}) {escape(n.label)}"
                                                      for n in lens.nearest_features[:10]),
                    title="activation-difference lens", title_align="left"))
    _print_table("Each position alone", ("position", "texts", "norm", "promotes", "nearest feature"),
                 [(str(p.position), str(p.n_texts), f"{p.norm:.3f}", " ".join(repr(t) for t, _ in p.promoted),
                   f"#{p.nearest_features[0].feature_id} {p.nearest_features[0].label}" if p.nearest_features else "-")
                  for p in lens.by_position])


@sae_app.command("attribute")
@clear_errors
def sae_attribute(
    organism_dir: OrganismDir,
    text: Annotated[str, typer.Argument(help="The prompt; the next token after it is explained.")],
    target: Annotated[str | None, typer.Option(help="The token to explain (default: the model's own choice).")]
    = None,
    top: Annotated[int, typer.Option(help="Features to list.")] = 10,
    ablate: Annotated[int, typer.Option(help="Top features to ablate for the causal check.")] = 5,
    chat: Chat = False, sae: SaeName = None, as_json: JsonFlag = False,
) -> None:
    """Attribution: the features whose activation x gradient most supports a next token; ablating them checks it."""
    result = _scope(organism_dir, sae).attribute(text, target_token=target, top=top, ablate=ablate, chat=chat)
    if as_json:
        emit_json(result.model_dump())
        return
    _print_table(f"Features supporting {result.target_token!r} (p = {result.target_probability:.4f})",
                 ("feature", "label", "activation", "attribution"),
                 [(str(f.feature_id), escape(f.label), f"{f.activation:.3f}", f"{f.attribution:+.4f}")
                  for f in result.features])
    out.print(f"ablating {result.ablated}: p({result.target_token!r}) {result.target_probability:.4f} -> "
              f"{result.ablated_probability:.4f} (drop {result.probability_drop:+.4f})")


@sae_app.command("steer")
@clear_errors
def sae_steer(
    organism_dir: OrganismDir,
    prompt: Annotated[str, typer.Argument(help="The user's message.")],
    feature: Annotated[list[int] | None, typer.Option(help="A feature to add (or ablate); repeat for several.")]
    = None,
    vector: Annotated[Path | None, typer.Option(help="A JSON vector to add instead (e.g. from `lens --save-vector`).")]
    = None,
    strength: Annotated[float | None, typer.Option(help="Times the feature's max activation (default 2), or times "
                                                        "the mean residual norm for a vector (default 0.5).")] = None,
    ablate: Annotated[bool, typer.Option(help="Remove the feature instead of adding it.")] = False,
    base_model: Annotated[bool, typer.Option("--base-model", help="Steer the base model (adapter off).")] = False,
    n: Annotated[int, typer.Option(help="Samples each way.")] = 1,
    max_new_tokens: Annotated[int, typer.Option(help="Tokens per sample.")] = 128,
    temperature: Annotated[float, typer.Option(help="0 is greedy.")] = 0.0,
    seed: Annotated[int, typer.Option(help="Random seed (the same for steered and unsteered).")] = 0,
    sae: SaeName = None, as_json: JsonFlag = False,
) -> None:
    """Steering: generate with a feature (or vector) added, or a feature ablated, beside the unsteered output."""
    from pinhole.workspace import read_json

    direction = read_json(vector) if vector else None
    result = _scope(organism_dir, sae).steer(
        prompt, feature_id=feature, vector=direction, mode="ablate" if ablate else "add", strength=strength,
        model="base" if base_model else "organism", n=n,
        sampling=Sampling(max_new_tokens=max_new_tokens, temperature=temperature, seed=seed))
    if as_json:
        emit_json(result.model_dump())
        return
    what = f"features {result.feature_ids}" if result.feature_ids else "the vector"
    for i, (plain, steered) in enumerate(zip(result.unsteered, result.steered, strict=True), 1):
        out.print(Panel(escape(plain), title=f"unsteered · sample {i}", title_align="left"))
        out.print(Panel(escape(steered), title=f"{result.mode} {what} x {result.strength} · sample {i}",
                        title_align="left", border_style="green"))


@sae_app.command("logit-lens")
@clear_errors
def sae_logit_lens(
    organism_dir: OrganismDir,
    text: Annotated[str, typer.Argument(help="The text to read.")],
    position: Annotated[int, typer.Option(help="The token position (-1: the last).")] = -1,
    top: Annotated[int, typer.Option(help="Tokens per layer.")] = 5,
    base_model: Annotated[bool, typer.Option("--base-model", help="Read the base model instead.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """The logit lens: per layer, the top tokens the residual stream predicts at a position (no SAE needed)."""
    from audit_tools.logit_lens import logit_lens
    from audit_tools.target import LocalTarget

    target = LocalTarget.from_organism(organism_dir)
    with target.use("base" if base_model else "organism") as module:
        lens = logit_lens(module, target.tokenizer, text, position, top)
    if as_json:
        emit_json(lens.model_dump())
        return
    _print_table(f"Logit lens at position {lens.position} ({lens.tokens[lens.position]!r})",
                 ("layer", "top tokens (probability)"),
                 [(str(layer.layer), escape("  ".join(f"{t!r} {p:.3f}" for t, p in layer.tokens)))
                  for layer in lens.layers])
