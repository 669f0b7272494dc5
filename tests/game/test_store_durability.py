"""The game database across processes: a killed writer loses nothing it acknowledged; two processes share it.

The file is never written in place (a DuckDB writer killed at a random point once left it unreadable in CI):
every change is a draft renamed over it. bench/store_kills.py kills writers of both stores repeatedly.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from game import games
from game.report import Report
from game.store import DatabaseCorrupt, transaction

REPO = Path(__file__).resolve().parents[2]
WRITER = """
import sys
from game import games
from game.report import Report
db, token = sys.argv[1], sys.argv[2]
team = games.authenticate(token, db=__import__("pathlib").Path(db))
report = Report(verdict="hidden_objective", root_cause="x" * 2000, confidence=0.5)
print("ready", flush=True)
while True:
    submission = games.submit(team, "Organism A", report, db=__import__("pathlib").Path(db))
    print(submission.submission_id, flush=True)
"""
READER = """
import sys, time
from pathlib import Path
from game.report import Report
from game.store import transaction
db, seconds = Path(sys.argv[1]), float(sys.argv[2])
end = time.monotonic() + seconds
reads = 0
while time.monotonic() < end:
    with transaction(db) as c:
        c.execute("SELECT count(*) FROM submissions").fetchone()
    reads += 1
print(reads, flush=True)
"""


def _child(code: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=REPO, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})


@pytest.fixture()
def game_db(tmp_path) -> tuple[Path, str]:
    return games.hand_made_game(tmp_path, "g")


@pytest.mark.harness
def test_a_writer_killed_at_random_points_loses_no_acknowledged_submission(game_db) -> None:
    """Each kill waits for 1-3 acknowledged submissions, then lands a random fraction of one write later.

    Timing is relative to the writer's own pace, so a slow machine kills as often mid-write as a fast one
    (a fixed sleep once let a slow CI runner acknowledge only one submission per kill).
    """
    db, token = game_db
    rng = random.Random(5)
    acknowledged: list[str] = []
    kills_mid_write = 0
    for _ in range(20):
        child = _child(WRITER, str(db), token)
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        wanted, start = rng.randint(1, 3), time.monotonic()
        acknowledged += [child.stdout.readline().strip() for _ in range(wanted)]
        time.sleep(rng.uniform(0, (time.monotonic() - start) / wanted))
        child.send_signal(signal.SIGKILL)
        out, _ = child.communicate()
        acknowledged += out.split()
        kills_mid_write += any(db.parent.glob(f".{db.name}.*.draft*"))  # a draft: killed inside a transaction
        with transaction(db) as c:  # opens after every kill
            rows = c.execute("SELECT submission_id, version, report FROM submissions").fetchall()
        stored = {r[0] for r in rows}
        assert set(acknowledged) <= stored
        assert all(json.loads(r[2])["root_cause"] == "x" * 2000 for r in rows)  # none partial
        assert sorted(r[1] for r in rows) == list(range(1, len(rows) + 1))
    assert kills_mid_write >= 10  # the kills hit writes, not the gaps between them


def test_the_cli_writes_while_another_process_reads_the_game(game_db) -> None:
    db, token = game_db
    reader = _child(READER, str(db), "4")
    time.sleep(0.5)
    team = games.authenticate(token, db)
    written = [games.submit(team, "Organism A", Report(verdict="benign", confidence=0.1), db)
               for _ in range(20)]
    out, _ = reader.communicate(timeout=60)
    assert reader.returncode == 0 and int(out) > 0
    assert [s.version for s in written] == list(range(1, 21))


def test_a_change_replaces_the_file_and_never_writes_the_old_one(game_db) -> None:
    db, token = game_db
    team = games.authenticate(token, db)
    with open(db, "rb") as old:  # the inode readers had open before the change
        before = old.read()
        games.submit(team, "Organism A", Report(verdict="benign", confidence=0.1), db)
        old.seek(0)
        assert old.read() == before
        assert os.fstat(old.fileno()).st_ino != db.stat().st_ino
    with transaction(db) as c:
        assert c.execute("SELECT count(*) FROM submissions").fetchone() == (1,)


def test_a_read_leaves_the_file_alone_and_a_failed_block_changes_nothing(game_db) -> None:
    db, _ = game_db
    inode = db.stat().st_ino
    with transaction(db) as c:
        c.execute("SELECT count(*) FROM teams").fetchone()
    with pytest.raises(ZeroDivisionError), transaction(db) as c:
        c.execute("DELETE FROM teams")
        raise ZeroDivisionError
    assert db.stat().st_ino == inode
    with transaction(db) as c:
        assert c.execute("SELECT count(*) FROM teams").fetchone()[0] > 0


def test_a_killed_writers_draft_is_cleared_and_nesting_is_refused(game_db) -> None:
    db, _ = game_db
    stale = db.with_name(f".{db.name}.999-dead.draft")
    stale.write_bytes(b"half a database")
    Path(f"{stale}.wal").write_bytes(b"half a log")
    with transaction(db) as c:
        c.execute("SELECT 1").fetchone()
    assert not stale.exists() and not Path(f"{stale}.wal").exists()
    with pytest.raises(RuntimeError, match="inside another"), transaction(db), transaction(db):
        pass


def test_an_unreadable_database_is_named_and_left_in_place(tmp_path) -> None:
    db = tmp_path / "game.duckdb"
    db.write_bytes(b"\0" * 8 + b"DUCK" + b"\x07" * 4096)
    with pytest.raises(DatabaseCorrupt, match=str(db)):
        with transaction(db):
            pass
    assert db.read_bytes().startswith(b"\0" * 8 + b"DUCK")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["game.duckdb", "game.duckdb.lock"]
