"""Benchmark: the browser game under load: N teams' browser sessions at once, page response times.

A real `streamlit run` of the app (the command `pinhole serve` runs) on a game in a temporary workspace, one
organism, N teams (tier `data`). Each team, in its own context of one headless Chromium, loops for the given
time: open the chat page and send a message, open the training data and search, open the notebook and submit
a report (`tests/ui/load.py`). Each step is timed from the click to its own result being visible. The run
then checks that every submission the browser confirmed is in the game database.

    python bench/ui.py [--teams 10] [--minutes 3] [--organism DIR]
Without --organism it builds the tests' tiny-random organism (random LoRA, no training: the timings are the
app's and the game's, not a real model's). Prints a table and writes bench/results/ui.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "bench" / "results" / "ui.json"


def tiny_organism(root: Path) -> Path:
    """The tests' tiny-random organism (corpus, card, sealed part, random adapter; no SAE needed here)."""
    from tests.audit_tools import add_random_adapter, corpus_frame, make_organism

    directory = make_organism(root / "organisms" / "org-bench-ui", "org-bench-ui", corpus_frame(200))
    add_random_adapter(directory)
    return directory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--teams", type=int, default=10)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--organism", type=Path, default=None, help="an organism directory (default: tiny-random)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    os.environ.setdefault("PINHOLE_BASE_MODELS", str(Path(os.environ.get("PINHOLE_HOME", REPO / "workspace"))
                                                     / "base_models"))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ["HF_HUB_OFFLINE"] = "1"
    home = Path(tempfile.mkdtemp(prefix="pinhole-bench-ui-"))
    os.environ["PINHOLE_HOME"] = str(home)

    from pinhole.workspace import atomic_write_json
    from tests.ui import AppServer
    from tests.ui.load import percentile, run_load, set_up_game

    organism = args.organism.resolve() if args.organism else tiny_organism(home)
    tokens = set_up_game("bench", organism, args.teams)
    server = AppServer(home / "server.log")
    started = time.perf_counter()
    try:
        result = run_load(server.url, tokens, args.minutes * 60)
    finally:
        server.stop()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(home / "server.log", args.out.with_suffix(".server.log"))  # the server's own log, kept
        shutil.rmtree(home, ignore_errors=True)
    elapsed = time.perf_counter() - started

    rows = []
    for step, values in sorted(result.timings.items()):
        rows.append({"step": step, "n": len(values), "p50_s": round(percentile(values, 50), 3),
                     "p95_s": round(percentile(values, 95), 3), "max_s": round(max(values), 3)})
    every = [v for values in result.timings.values() for v in values]
    overall = {"step": "every step", "n": len(every), "p50_s": round(percentile(every, 50), 3),
               "p95_s": round(percentile(every, 95), 3), "max_s": round(max(every), 3)} if every else None
    table = Table(title=f"{args.teams} teams for {args.minutes:g} min on {organism.name}: page response (s)")
    for column in ("step", "n", "p50_s", "p95_s", "max_s"):
        table.add_column(column)
    for row in rows + ([overall] if overall else []):
        table.add_row(*(str(row[c]) for c in ("step", "n", "p50_s", "p95_s", "max_s")))
    console = Console()
    console.print(table)
    submitted, stored = sum(result.confirmed.values()), sum(result.stored.values())
    console.print(f"rounds {result.rounds}; submissions confirmed {submitted}, in the database {stored}, "
                  f"lost {sum(result.lost.values())}; errors {len(result.errors)}; {elapsed:.0f} s")
    for error in result.errors[:10]:
        console.print(f"  [red]{error}[/red]")
    atomic_write_json(args.out, {"teams": args.teams, "minutes": args.minutes, "organism": organism.name,
                                 "rows": rows, "overall": overall, "rounds": result.rounds,
                                 "submissions_confirmed": submitted, "submissions_stored": stored,
                                 "lost": result.lost, "errors": result.errors,
                                 "machine": {"platform": platform.platform(), "processor": platform.processor(),
                                             "cpus": os.cpu_count()}})
    print(f"wrote {args.out}")
    sys.exit(1 if result.errors or result.lost else 0)


if __name__ == "__main__":
    main()
