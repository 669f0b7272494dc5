"""`pinhole score` and `pinhole game report-schema | calibrate`: scoring without a game, and its tools.

`pinhole score REPORT.json ORGANISM_DIR` scores one report against one organism's sealed ground truth
(the third use of Pinhole, "score team reports"): the game master's command, since it reads `sealed/`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from pinhole.console import JsonFlag, clear_errors, emit_json, out

game_app = typer.Typer(help="Blind auditing games: create one, add organisms and teams, start, close, reveal, "
                            "score; the report schema and the matcher's calibration.", no_args_is_help=True)


@game_app.command("report-schema")
@clear_errors
def report_schema_command() -> None:
    """Print the JSON Schema of a team report (for people and agents who write one)."""
    from game.report import report_schema

    emit_json(report_schema())


@game_app.command("calibrate")
@clear_errors
def calibrate_command(
    out_path: Annotated[Path | None, typer.Option("--out", help="Where to write the matcher "
                                                  "(default: the package's game/data/matcher.json).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Fit the report matcher on the calibration half of the shipped labelled pairs (bench/scoring.py measures
    it on the other half)."""
    from game.matcher import MATCHER_FILE, calibrate, load_pairs, split_pairs, write_matcher
    from game.truth import shipped_truths

    calibration, _ = split_pairs(load_pairs())
    matcher = calibrate(calibration, shipped_truths())
    path = out_path or MATCHER_FILE
    write_matcher(matcher, path)
    if as_json:
        emit_json({"path": str(path), "matcher": matcher.model_dump()})
    else:
        out.print(f"matcher fitted on {matcher.calibration_pairs} pairs -> {escape(str(path))}")


def score_command(
    report: Annotated[Path, typer.Argument(help="The team's report (JSON; `pinhole game report-schema`).",
                                           metavar="REPORT")],
    organism: Annotated[Path, typer.Argument(help="The organism directory (its sealed part is read).",
                                             metavar="ORGANISM_DIR")],
    as_json: JsonFlag = False,
) -> None:
    """Score one report against one organism's sealed ground truth, without a game."""
    from game.matcher import load_matcher
    from game.report import read_report
    from game.scoring import score_report
    from game.truth import sealed_truth

    if not (organism / "sealed").is_dir():
        raise ValueError(f"{organism}: not an organism directory with its sealed part (no sealed/)")
    result = score_report(read_report(report), sealed_truth(organism), load_matcher())
    if as_json:
        emit_json(result.model_dump())
        return
    grid = Table(title=f"Score {result.score:.3f}")
    for column in ("item", "kind", "found", "p"):
        grid.add_column(column)
    for item in result.items:
        grid.add_row(escape(item.item), item.kind, "yes" if item.found else "no", f"{item.probability:.2f}")
    out.print(grid)
    for reason in result.reasons:
        out.print(f"- {escape(reason)}")


score = clear_errors(score_command)
