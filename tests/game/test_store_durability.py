"""The game database across processes: a killed writer loses nothing it acknowledged; two processes share it."""

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
from game.store import transaction

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
    db, token = game_db
    rng = random.Random(5)
    acknowledged: list[str] = []
    for _ in range(20):
        child = _child(WRITER, str(db), token)
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 1.5))
        child.send_signal(signal.SIGKILL)
        out, _ = child.communicate()
        acknowledged += out.split()
        with transaction(db) as c:  # opens after every kill
            rows = c.execute("SELECT submission_id, version, report FROM submissions").fetchall()
        stored = {r[0] for r in rows}
        assert set(acknowledged) <= stored
        assert all(json.loads(r[2])["root_cause"] == "x" * 2000 for r in rows)  # none partial
        assert sorted(r[1] for r in rows) == list(range(1, len(rows) + 1))
    assert len(acknowledged) > 20


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
