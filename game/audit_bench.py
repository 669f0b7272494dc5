"""The auditing benchmark: which tools find which objectives, with false alarms counted.

Organisms x tiers x seeds: each cell is one scripted audit (blind, through a private game, `game.audit_run`),
then scored by the game master's side against the sealed ground truth (`game.scoring`, the calibrated matcher):
root cause found, behaviour recall and precision, held-out behaviours found, a false alarm when a benign
organism is called hidden, tool calls and wall time. Rows aggregate the seeds (mean and spread). The per-tool
ablation re-runs each organism's widest tier with one tool withheld at a time: the drop in score says which
tool carried the success. Saved as JSON, a Markdown table and a plot, each written atomically.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, Field

from game.audit_run import audit_organism, scripted
from game.auditor import AuditSettings
from game.judging import matchers
from game.scoring import score_report
from game.store import transaction
from game.truth import sealed_truth
from pinhole.organism import read_card
from pinhole.workspace import atomic_write_bytes

BENCH_FORMAT_VERSION = 1
TIMING_FIELDS = ("wall_time_s",)  # the only figures that differ between two runs with the same seeds


class BenchCell(BaseModel):
    """One audit and its score."""

    organism: str  # the spec id (the game master's name for it)
    organism_id: str
    benign: bool
    tier: str
    seed: int
    withheld: str | None = None  # the tool withheld (ablation), None for the full tier's tools
    outcome: str
    verdict: str | None
    score: float
    root_cause_found: bool
    behaviour_recall: float
    behaviour_precision: float
    heldout_recall: float
    false_alarm: bool
    claims: int
    tools_used: list[str]
    tool_calls: int
    wall_time_s: float


class BenchRow(BaseModel):
    """Cells of one (organism, tier, withheld tool) over seeds."""

    organism: str
    tier: str
    withheld: str | None
    seeds: int
    score_mean: float
    score_sd: float
    root_cause_found: float  # share of seeds
    recall_mean: float
    precision_mean: float
    heldout_mean: float
    false_alarms: int
    failures: int
    tool_calls_mean: float
    wall_time_mean_s: float


class BenchResult(BaseModel):
    format_version: int = BENCH_FORMAT_VERSION
    matcher: str
    cells: list[BenchCell] = Field(default_factory=list)
    rows: list[BenchRow] = Field(default_factory=list)


def _score_cell(organism_dir: Path, tier: str, seed: int, settings: AuditSettings, matcher_name: str,
                withheld: str | None, runs_dir: Path) -> BenchCell:
    truth, organism_id = sealed_truth(organism_dir), read_card(organism_dir).organism_id
    cell_settings = settings.model_copy(update={"seed": seed, "withheld": [withheld] if withheld else []})
    name = f"{truth.spec_id}-{tier}-s{seed}" + (f"-no-{withheld}" if withheld else "")
    run = audit_organism(organism_dir, tier, scripted(cell_settings), out_dir=runs_dir / name)  # type: ignore[arg-type]
    trace, report = run.trace, run.trace.report
    with transaction(run.database) as c:  # the engine's log: what the auditor actually used
        used = sorted(t for (t,) in c.execute("SELECT DISTINCT tool FROM tool_calls WHERE outcome = 'ok'").fetchall())
    common = {"organism": truth.spec_id, "organism_id": organism_id, "benign": truth.benign, "tier": tier,
              "seed": seed, "withheld": withheld, "outcome": trace.outcome, "tools_used": used,
              "tool_calls": trace.tool_calls, "wall_time_s": trace.wall_time_s}
    if report is None:  # a failed audit scores nothing, and is counted as a failure
        return BenchCell(**common, verdict=None, score=0.0, root_cause_found=False, behaviour_recall=0.0,
                         behaviour_precision=0.0, heldout_recall=0.0, false_alarm=False, claims=0)
    score = score_report(report, truth, matchers()[matcher_name])
    return BenchCell(**common, verdict=report.verdict, score=score.score,
                     root_cause_found=any(i.kind == "root_cause" and i.found for i in score.items),
                     behaviour_recall=score.behaviour_recall, behaviour_precision=score.behaviour_precision,
                     heldout_recall=score.heldout_recall,
                     false_alarm=truth.benign and report.verdict == "hidden_objective",
                     claims=len(report.behaviours))


def _rows(cells: list[BenchCell]) -> list[BenchRow]:
    groups: dict[tuple[str, str, str | None], list[BenchCell]] = {}
    for cell in cells:
        groups.setdefault((cell.organism, cell.tier, cell.withheld), []).append(cell)
    rows = []
    for (organism, tier, withheld), group in groups.items():
        scores = [c.score for c in group]
        rows.append(BenchRow(
            organism=organism, tier=tier, withheld=withheld, seeds=len(group),
            score_mean=round(statistics.fmean(scores), 4),
            score_sd=round(statistics.stdev(scores), 4) if len(scores) > 1 else 0.0,
            root_cause_found=round(sum(c.root_cause_found for c in group) / len(group), 4),
            recall_mean=round(statistics.fmean(c.behaviour_recall for c in group), 4),
            precision_mean=round(statistics.fmean(c.behaviour_precision for c in group), 4),
            heldout_mean=round(statistics.fmean(c.heldout_recall for c in group), 4),
            false_alarms=sum(c.false_alarm for c in group), failures=sum(c.outcome != "complete" for c in group),
            tool_calls_mean=round(statistics.fmean(c.tool_calls for c in group), 1),
            wall_time_mean_s=round(statistics.fmean(c.wall_time_s for c in group), 1)))
    return rows


def run_benchmark(organism_dirs: list[Path], tiers: list[str], seeds: list[int], runs_dir: Path,
                  settings: AuditSettings | None = None, ablate: bool = False, matcher_name: str = "embedding",
                  on_cell: Callable[[BenchCell], None] | None = None) -> BenchResult:
    """Every organism x tier x seed (and, with `ablate`, each tool withheld in turn at the widest tier asked)."""
    settings = settings or AuditSettings()
    if matcher_name not in matchers():
        raise ValueError(f"matcher {matcher_name!r}: expected one of {', '.join(matchers())}")
    result = BenchResult(matcher=matcher_name)
    widest = max(tiers, key=["blackbox", "data", "full"].index)

    def add(cell: BenchCell) -> None:
        result.cells.append(cell)
        if on_cell:
            on_cell(cell)

    for organism_dir in organism_dirs:
        for tier in tiers:
            for seed in seeds:
                add(_score_cell(Path(organism_dir), tier, seed, settings, matcher_name, None, runs_dir))
        if ablate:
            organism_id = read_card(organism_dir).organism_id
            used = sorted({t for c in result.cells if c.organism_id == organism_id and c.tier == widest
                           for t in c.tools_used})
            for tool in used:
                for seed in seeds:
                    add(_score_cell(Path(organism_dir), widest, seed, settings, matcher_name, tool, runs_dir))
    result.rows = _rows(result.cells)
    return result


def markdown_table(result: BenchResult) -> str:
    """The rows as a Markdown table (mean, ± standard deviation over seeds)."""
    lines = ["| organism | tier | withheld | seeds | score | root cause | recall | precision | held-out | "
             "false alarms | failures | tool calls | wall time (s) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in result.rows:
        lines.append(f"| {r.organism} | {r.tier} | {r.withheld or '-'} | {r.seeds} | {r.score_mean:.2f} ± "
                     f"{r.score_sd:.2f} | {r.root_cause_found:.0%} | {r.recall_mean:.2f} | {r.precision_mean:.2f} | "
                     f"{r.heldout_mean:.2f} | {r.false_alarms} | {r.failures} | {r.tool_calls_mean:.0f} | "
                     f"{r.wall_time_mean_s:.0f} |")
    return "\n".join(lines) + "\n"


def plot_result(result: BenchResult, path: Path) -> Path:
    """A bar chart of the mean score (with its spread) per organism and tier, ablations left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in result.rows if r.withheld is None]
    organisms = list(dict.fromkeys(r.organism for r in rows))
    tiers = [t for t in ("blackbox", "data", "full") if any(r.tier == t for r in rows)]
    figure, axis = plt.subplots(figsize=(max(5, 1.6 * len(organisms) * max(1, len(tiers))), 4))
    width = 0.8 / max(1, len(tiers))
    for i, tier in enumerate(tiers):
        found = {r.organism: r for r in rows if r.tier == tier}
        xs = [n + i * width for n in range(len(organisms))]
        axis.bar(xs, [found[o].score_mean if o in found else 0 for o in organisms], width,
                 yerr=[found[o].score_sd if o in found else 0 for o in organisms], label=tier, capsize=3)
    axis.set_xticks([n + width * (len(tiers) - 1) / 2 for n in range(len(organisms))], organisms, rotation=15)
    axis.set_ylim(0, 1)
    axis.set_ylabel("score (mean over seeds)")
    axis.set_title("Scripted auditor: score by organism and tier")
    axis.legend()
    figure.tight_layout()
    from io import BytesIO

    buffer = BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def save_result(result: BenchResult, out_dir: Path) -> list[Path]:
    """`audit_bench.json`, `audit_bench.md` and `audit_bench.png` in `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / "audit_bench.json", out_dir / "audit_bench.md"
    atomic_write_bytes(json_path, result.model_dump_json(indent=2).encode("utf-8"))
    atomic_write_bytes(md_path, markdown_table(result).encode("utf-8"))
    return [json_path, md_path, plot_result(result, out_dir / "audit_bench.png")]
