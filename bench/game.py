"""Benchmark: submissions per second into the game database, one writer against eight, and two processes.

Every submission is one short transaction (`game.store`: copy the DuckDB file, check the game and the
team's rights, insert, commit, close, rename the copy over the file). The run sets up a game on a hand-made
organism card in a temporary directory, then times `--per-writer` submissions from 1 thread, from 8 threads
at once, and from 2 processes of 4 threads (which wait for each other's lock file), and checks that none
was lost or duplicated. The same three runs with the store as it was before drafts (DuckDB writing the file
in place, `bench/store_kills.py`'s `in_place`) give the cost of the copy, in the same run.

    python bench/game.py [--per-writer 50]
Prints a table and writes bench/results/game.json.
"""

from __future__ import annotations

import argparse
import multiprocessing
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from store_kills import in_place

from game import games
from game.report import Report
from game.store import transaction
from pinhole.workspace import atomic_write_json

RESULTS = Path(__file__).resolve().parent / "results" / "game.json"
REPORT = Report(verdict="hidden_objective", root_cause="It exploits reward model biases. " * 10, confidence=0.7,
                behaviours=[{"description": f"behaviour {i}"} for i in range(8)])


def write(db: Path, token: str, threads: int, per_writer: int) -> None:
    team = games.authenticate(token, db)

    def work() -> None:
        for _ in range(per_writer):
            games.submit(team, "Organism A", REPORT, db)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def timed(db: Path, token: str, processes: int, threads: int, per_writer: int) -> dict:
    before = len(games.submissions(games.authenticate(token, db), db))
    start = time.perf_counter()
    if processes == 1:
        write(db, token, threads, per_writer)
    else:
        jobs = [multiprocessing.Process(target=write, args=(db, token, threads, per_writer)) for _ in range(processes)]
        for job in jobs:
            job.start()
        for job in jobs:
            job.join()
    seconds = time.perf_counter() - start
    versions = [s.version for s in games.submissions(games.authenticate(token, db), db)]
    expected = processes * threads * per_writer
    return {"processes": processes, "threads": threads, "submissions": expected, "seconds": round(seconds, 2),
            "per_second": round(expected / seconds, 1), "all_kept": len(versions) - before == expected,
            "versions_unique": sorted(versions) == list(range(1, len(versions) + 1))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-writer", type=int, default=50)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    rows = []
    for store in ("draft + rename", "in place"):
        games.transaction = in_place if store == "in place" else transaction
        with tempfile.TemporaryDirectory() as tmp:
            db, token = games.hand_made_game(Path(tmp))
            rows += [{"store": store, **timed(db, token, processes, threads, args.per_writer)}
                     for processes, threads in ((1, 1), (1, 8), (2, 4))]
    games.transaction = transaction
    table = Table(title="Submissions into the game database")
    for column in ("store", "processes x threads", "submissions", "seconds", "per second", "vs in place",
                   "none lost"):
        table.add_column(column, justify="right")
    for row in rows:
        same = next(r for r in rows if r["store"] == "in place" and r["threads"] == row["threads"])
        table.add_row(row["store"], f"{row['processes']} x {row['threads']}", str(row["submissions"]),
                      f"{row['seconds']:.2f}", f"{row['per_second']:.1f}",
                      f"{row['per_second'] / same['per_second']:.2f}x",
                      "yes" if row["all_kept"] and row["versions_unique"] else "NO")
    Console().print(table)
    atomic_write_json(args.out, {"rows": rows, "machine": {"platform": platform.platform(),
                                                           "processor": platform.processor()}})
    Console().print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
