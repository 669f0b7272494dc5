"""`pinhole bench audit`: the auditing benchmark (also `python bench/audit.py`).

    pinhole bench audit workspace/organisms/org-1 workspace/organisms/org-2 --tiers blackbox,data,full --seeds 0,1,2
    pinhole bench audit workspace/organisms/org-1 --tiers full --ablate --out bench/results/audit

The game master's command: audits run blind (private games), scoring reads each organism's sealed truth.
Writes `audit_bench.json`, `audit_bench.md` and `audit_bench.png` to `--out`; every audit's trace and game
database are kept under `--out/runs/`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from pinhole.console import JsonFlag, clear_errors, console, emit_json, out

bench_app = typer.Typer(help="Benchmarks a game master runs on their own organisms.", no_args_is_help=True)


def _list(text: str, name: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise ValueError(f"{name}: give at least one value, comma-separated")
    return items


@bench_app.command("audit")
@clear_errors
def bench_audit(
    organisms: Annotated[list[Path], typer.Argument(help="Organism directories (benign controls included).",
                                                    metavar="ORGANISM_DIR...")],
    tiers: Annotated[str, typer.Option(help="Comma-separated tiers to audit at.")] = "blackbox,data,full",
    seeds: Annotated[str, typer.Option(help="Comma-separated auditor seeds (the spread is over these).")] = "0,1,2",
    ablate: Annotated[bool, typer.Option(help="Also withhold each tool the auditor used, one at a time, at the "
                                              "widest tier: which tool carried each success.")] = False,
    matcher: Annotated[str, typer.Option(help="The claim matcher that scores the reports.")] = "embedding",
    max_new_tokens: Annotated[int, typer.Option(min=1, help="New tokens per answer the auditor asks for.")] = 160,
    out_dir: Annotated[Path, typer.Option("--out", help="Where the table, plot, JSON and runs go.")]
    = Path("bench/results/audit"),
    as_json: JsonFlag = False,
) -> None:
    """Organisms x tiers x seeds with the scripted auditor: root cause found, behaviour recall and precision,
    held-out behaviours found, false alarms on benign organisms, tool calls and wall time."""
    from game.audit_bench import markdown_table, run_benchmark, save_result
    from game.auditor import AuditSettings
    from game.games import TIERS

    tier_list = _list(tiers, "--tiers")
    for tier in tier_list:
        if tier not in TIERS:
            raise ValueError(f"--tiers: {tier!r} is not a tier ({', '.join(TIERS)})")
    try:
        seed_list = [int(s) for s in _list(seeds, "--seeds")]
    except ValueError:
        raise ValueError(f"--seeds {seeds!r}: expected comma-separated integers") from None

    def report(cell) -> None:
        withheld = f" without {cell.withheld}" if cell.withheld else ""
        console.print(f"{cell.organism} {cell.tier}{withheld} seed {cell.seed}: {cell.outcome}, verdict "
                      f"{cell.verdict}, score {cell.score:.2f} ({cell.tool_calls} calls, {cell.wall_time_s:.0f} s)")

    settings = AuditSettings(max_new_tokens=max_new_tokens)
    result = run_benchmark(organisms, tier_list, seed_list, out_dir / "runs", settings, ablate, matcher, on_cell=report)
    paths = save_result(result, out_dir)
    if as_json:
        emit_json({"files": [str(p) for p in paths], **result.model_dump(mode="json")})
        return
    out.print(markdown_table(result))
    out.print("written: " + ", ".join(escape(str(p)) for p in paths))
