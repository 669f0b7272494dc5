"""Benchmark: submissions per second into the game database, one writer against eight, and two processes.

Every submission is one short transaction (open the DuckDB file, check the game and the team's rights,
insert, commit, close: `game.store`). The run sets up a game on a hand-made organism card in a temporary
directory, then times `--per-writer` submissions from 1 thread, from 8 threads at once, and from 2
processes of 4 threads (which wait for each other's file lock), and checks that none was lost or duplicated.

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

from game import games
from game.report import Report
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
    with tempfile.TemporaryDirectory() as tmp:
        db, token = games.hand_made_game(Path(tmp))
        rows = [timed(db, token, 1, 1, args.per_writer), timed(db, token, 1, 8, args.per_writer),
                timed(db, token, 2, 4, args.per_writer)]
    table = Table(title="Submissions into the game database")
    for column in ("processes x threads", "submissions", "seconds", "per second", "vs 1 writer", "none lost"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(f"{row['processes']} x {row['threads']}", str(row["submissions"]), f"{row['seconds']:.2f}",
                      f"{row['per_second']:.1f}", f"{row['per_second'] / rows[0]['per_second']:.2f}x",
                      "yes" if row["all_kept"] and row["versions_unique"] else "NO")
    Console().print(table)
    atomic_write_json(args.out, {"rows": rows, "machine": {"platform": platform.platform(),
                                                           "processor": platform.processor()}})
    Console().print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
