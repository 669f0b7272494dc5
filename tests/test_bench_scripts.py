"""Every benchmark script still starts: `python bench/X.py --help` prints its help, as a user would run it.

The benches need real organisms and both cores, so the suite never runs them; this catches the cheap ways they
rot: a function moved or renamed in the package, or a script that cannot find the package at all (run as a
script, its own folder comes first on the path, where `bench/game.py` hides the `game` package).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((REPO / "bench").glob("*.py"))


def test_the_benches_are_found() -> None:
    assert {"sae.py", "feature_index.py", "store_kills.py", "audit.py"} <= {p.name for p in SCRIPTS}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_the_bench_script_prints_its_help(script: Path) -> None:
    run = subprocess.run([sys.executable, str(script), "--help"], cwd=REPO, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, f"{script.name} --help failed:\n{run.stderr[-2000:]}"
    assert "usage" in run.stdout.lower(), run.stdout
