"""Benchmark: does the game database survive a writer killed at random points? In place against draft-and-rename.

A child process submits reports in a loop (`game.games.submit`); the parent kills it (SIGKILL)
after a random 0.02-0.4 s, then opens the database the way the next transaction would and counts the
submissions, for `--kills` rounds or until the file cannot be read. Trials run `--parallel` at a time (each
in its own process, on its own hand-made game): the ad-hoc loops that broke the in-place file ran two at a
time. So far this bench has not broken it (docs/performance.md). Two stores, in the same run:

- `in place`: DuckDB opens the deployment's file itself, runs the transaction and closes (checkpointing
  the file); after a kill, the next open replays what the killed writer left in DuckDB's write-ahead log.
  This is how `game.store.transaction` worked before it used drafts (the bench patches it back in).
- `draft + rename`: `game.store.transaction` (copy the file, write the copy, rename it over the file).

    python bench/store_kills.py [--kills 300] [--trials 3] [--parallel 2]
Prints a table (kills survived per trial, acknowledged submissions lost) and writes
bench/results/store_kills.json.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import duckdb
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from game import games  # noqa: E402
from game.store import DatabaseCorrupt, migrated_transaction, transaction  # noqa: E402
from pinhole.workspace import atomic_write_json  # noqa: E402

RESULTS = REPO / "bench" / "results" / "store_kills.json"
WRITER = """
import sys
from pathlib import Path
from game import games
from game.report import Report
db, token, store = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
if store == "in place":
    sys.path.insert(0, "bench")
    from store_kills import in_place
    games.transaction = in_place
team = games.authenticate(token, db=db)
report = Report(verdict="hidden_objective", root_cause="x" * 2000, confidence=0.5)
print("ready", flush=True)
while True:
    print(games.submit(team, "Organism A", report, db=db).submission_id, flush=True)
"""


_IN_PLACE_LOCK = threading.Lock()


@contextlib.contextmanager
def in_place(path: Path | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """`game.store.transaction` as it was before drafts: DuckDB opens, writes and checkpoints the file itself
    (threads take turns; a process that finds the file locked by another retries)."""
    assert path is not None
    with _IN_PLACE_LOCK:
        while True:
            try:
                connection = duckdb.connect(str(path))
                break
            except duckdb.IOException as err:
                if "could not set lock" not in str(err).lower():
                    raise
                time.sleep(0.01 * (1 + random.random()))
        with contextlib.closing(connection), migrated_transaction(connection, path):
            yield connection


def stored_ids(writer: str, db: Path) -> set[str]:
    """The submissions in the database, read as that store's next transaction would read them."""
    opened = in_place(db) if writer == "in place" else transaction(db)
    with opened as connection:
        return {r[0] for r in connection.execute("SELECT submission_id FROM submissions").fetchall()}


def trial(writer: str, kills: int, seed: int, copy_after_kill: bool = False) -> dict:
    """Kill `writer` up to `kills` times; stop at the first database that cannot be read."""
    rng = random.Random(seed)
    acknowledged: set[str] = set()
    with tempfile.TemporaryDirectory() as tmp:
        games.transaction = in_place if writer == "in place" else transaction  # the game's whole history
        db, token = games.hand_made_game(Path(tmp), "g")
        for kill in range(1, kills + 1):
            child = subprocess.Popen([sys.executable, "-c", WRITER, str(db), token, writer], cwd=REPO, text=True,
                                     stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(REPO)})
            assert child.stdout is not None and child.stdout.readline().strip() == "ready"
            time.sleep(rng.uniform(0.02, 0.4))
            child.send_signal(signal.SIGKILL)
            out, _ = child.communicate()
            acknowledged |= set(out.split())
            if copy_after_kill:  # I/O beside the next open, as a backup job would make
                shutil.copyfile(db, Path(tmp) / "copy.duckdb")
            try:
                stored = stored_ids(writer, db)
            except (duckdb.Error, DatabaseCorrupt) as err:
                return {"writer": writer, "seed": seed, "kills": kill, "corrupt": True, "error": str(err)[:200],
                        "acknowledged": len(acknowledged), "lost": None}
        return {"writer": writer, "seed": seed, "kills": kills, "corrupt": False, "error": None,
                "acknowledged": len(acknowledged), "lost": len(acknowledged - stored)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=300, help="kills per trial (a trial stops at a corrupt file)")
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--parallel", type=int, default=2, help="trials at once (load on the machine)")
    parser.add_argument("--stores", nargs="+", default=["in place", "draft + rename"])
    parser.add_argument("--copy-after-kill", action="store_true", help="copy the database file after each kill")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    plan = [(writer, seed) for seed in range(args.trials) for writer in args.stores]
    with ProcessPoolExecutor(args.parallel, mp_context=multiprocessing.get_context("spawn")) as pool:
        rows = list(pool.map(trial, [w for w, _ in plan], [args.kills] * len(plan), [s for _, s in plan],
                             [args.copy_after_kill] * len(plan)))
    rows.sort(key=lambda row: (row["writer"] != "in place", row["seed"]))
    table = Table(title=f"A writer killed at random points (0.02-0.4 s), up to {args.kills} kills per trial, "
                        f"{args.parallel} trials at once")
    for column in ("writer", "trial", "kills", "file", "acknowledged", "lost"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(row["writer"], str(row["seed"]), str(row["kills"]), "CORRUPT" if row["corrupt"] else "readable",
                      str(row["acknowledged"]), "-" if row["lost"] is None else str(row["lost"]))
    Console().print(table)
    atomic_write_json(args.out, {"rows": rows, "duckdb": duckdb.__version__, "parallel": args.parallel,
                                 "machine": {"platform": platform.platform(), "processor": platform.processor()}})
    Console().print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
