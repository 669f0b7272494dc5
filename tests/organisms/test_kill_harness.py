"""Builds survive a kill: SIGKILL at random points of a smoke build, then a re-run finishes.

Each run is a real `pinhole organism build` process (tiny-random base, smoke preset) that kills itself with
SIGKILL at one point drawn from a seeded generator: after a random delay, or at a named moment of the real
code path (half-way through writing a checkpoint's trainer state, with a checkpoint's weights saved but no
state yet, with the corpus half-written, while the organism is being assembled for publishing, just before the
evaluation is recorded). The harness plays 10 runs in 2 rounds (more rounds only draw more points, at about a
minute each); each round starts from an empty workspace (the prepared base models are shared), kills 5 runs in
a row (each resuming what the last left), then lets one run finish. After each kill the workspace must hold no
sealed material outside a published organism and the build directory; after each round the organism must
verify against its commitment and carry its evaluation.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from organisms.sealed import verify_commitment
from pinhole.organism import read_card
from tests.helpers import spec_path

ROUNDS, KILLS_PER_ROUND = 2, 5
POINTS = ("time", "checkpoint-state-half-written", "checkpoint-before-state", "corpus-half-written",
          "publish-assembled", "publish-sealed-written", "before-eval-recorded")
# Once a run has finished, a re-run only publishes and evaluates again: these are the points it reaches.
AFTER_A_FINISHED_RUN = ("time", "publish-assembled", "publish-sealed-written", "before-eval-recorded")

CHILD = r'''
import os, signal, sys, threading
point, nth, delay = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
args = sys.argv[4:]
seen = {"n": 0}

def die_at(name):
    if name == point:
        seen["n"] += 1
        if seen["n"] >= nth:
            os.kill(os.getpid(), signal.SIGKILL)

if point == "time":
    threading.Timer(delay, lambda: os.kill(os.getpid(), signal.SIGKILL)).start()

import transformers.trainer_callback as callbacks
original_save = callbacks.TrainerState.save_to_json
def save_to_json(self, path):
    die_at("checkpoint-before-state")
    if point == "checkpoint-state-half-written" and seen["n"] + 1 >= nth:
        text = self.to_json_string() if hasattr(self, "to_json_string") else "{}"
        with open(path, "w") as handle:
            handle.write(text[: len(text) // 2])
            handle.flush()
    die_at("checkpoint-state-half-written")
    return original_save(self, path)
callbacks.TrainerState.save_to_json = save_to_json

import organisms.corpus as corpus, organisms.sealed as sealed, organisms.build as build
original_write_corpus = build.write_corpus
def write_corpus(c, public_path, provenance_path):
    public_path.write_bytes(c.public.to_parquet(index=False)[:1000])
    die_at("corpus-half-written")
    return original_write_corpus(c, public_path, provenance_path)
build.write_corpus = write_corpus

original_sealed_part = sealed.write_sealed_part
def write_sealed_part(*a, **k):
    die_at("publish-assembled")
    original_sealed_part(*a, **k)
    die_at("publish-sealed-written")
sealed.write_sealed_part = write_sealed_part

original_sealed_eval = sealed.write_sealed_eval
def write_sealed_eval(*a, **k):
    die_at("before-eval-recorded")
    return original_sealed_eval(*a, **k)
sealed.write_sealed_eval = write_sealed_eval

from game.cli import app
app(args)
'''


def _build_args() -> list[str]:
    return ["organism", "build", str(spec_path("benign_decoy")), "--base", "tiny-random", "--preset", "smoke",
            "--set", "seed=31", "--set", "training.sft.max_steps=3", "--json"]


def _run(home: Path, point: str, nth: int, delay: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "PINHOLE_HOME": str(home)}
    return subprocess.run([sys.executable, "-c", CHILD, point, str(nth), f"{delay:.2f}", *_build_args()],
                          env=env, capture_output=True, text=True, timeout=600)


def _stray_sealed_material(home: Path) -> list[str]:
    """Sealed files anywhere but inside a published organism's sealed/ or a build directory."""
    stray = []
    for path in home.rglob("*"):
        relative = path.relative_to(home)
        if relative.parts[0] in ("builds", "base_models", "cache"):
            continue
        sealed_file = path.name in ("ground_truth.json", "provenance.parquet", "eval.json") or path.name == "sealed"
        published = (len(relative.parts) >= 3 and relative.parts[0] == "organisms"
                     and not relative.parts[1].startswith(".") and relative.parts[2] == "sealed")
        if sealed_file and not published:
            stray.append(str(relative))
    hidden = [p.name for p in (home / "organisms").iterdir()] if (home / "organisms").is_dir() else []
    return stray + [f"organisms/{name}" for name in hidden if name.startswith(".")]


@pytest.mark.harness
@pytest.mark.parametrize("round_index", range(ROUNDS))
def test_killed_builds_resume_to_a_verified_organism(tmp_path: Path, round_index: int) -> None:
    rng = random.Random(1000 + round_index)
    home = tmp_path / "home"
    killed, finished = 0, False
    for _ in range(KILLS_PER_ROUND):
        point = rng.choice(AFTER_A_FINISHED_RUN if finished else POINTS)
        nth = 1 if point in AFTER_A_FINISHED_RUN[1:] else rng.randint(1, 3)
        result = _run(home, point, nth=nth, delay=rng.uniform(3.0, 20.0))
        killed += result.returncode == -signal.SIGKILL
        finished = finished or result.returncode == 0
        assert result.returncode in (0, -signal.SIGKILL), result.stderr[-3000:]
        assert _stray_sealed_material(home) == [], (point, _stray_sealed_material(home))
    assert killed >= KILLS_PER_ROUND - 2  # a timer may outlast a short run, a point may not be reached
    final = _run(home, "none", 1, 0.0)
    assert final.returncode == 0, final.stderr[-3000:]
    directory = Path(json.loads(final.stdout)["directory"])
    assert verify_commitment(directory)
    assert read_card(directory).capability is not None
    assert (directory / "sealed").stat().st_mode & 0o777 == 0o700
    assert _stray_sealed_material(home) == []
    assert [p.name for p in (home / "organisms").iterdir()] == [directory.name]
