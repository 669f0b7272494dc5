"""`make demo`: from a fresh clone to a playable game, every step cached so a second run only serves.

Steps, each skipped when its result is already in the workspace:
1. build the demo organisms (rm_sycophancy and the benign decoy) on the fast path (ordinary rows from
   the shipped haystack; their cards say they are not membership-blind);
2. train an SAE on each (sae-lens; the demo settings below) and index its corpus for the microscope;
3. build each corpus' search index (BM25 + embeddings);
4. create the demo game with two teams at different tiers (`full` and `blackbox`) and start it.
Team tokens are shown once by the engine; the demo keeps them in `<workspace>/demo/tokens.json`
(mode 0600, outside the repository) so that every later run can print them again.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

from pydantic import BaseModel

from audit_tools.corpus_index import CorpusIndex
from audit_tools.feature_index import build_feature_index
from audit_tools.sae_store import saes_root
from audit_tools.sae_training import SaeSettings, train_sae
from audit_tools.target import LocalTarget
from game import games
from game.store import transaction
from organisms.build import build_organism
from organisms.spec import SPECS_DIR
from pinhole.workspace import atomic_write_bytes, workspace

DEMO_SPECS = ("rm_sycophancy", "benign_decoy")
DEMO_TEAMS = (("red", "full"), ("blue", "blackbox"))
DEMO_GAME = "demo"


class DemoSetup(BaseModel):
    """What the demo prepared: the game, its organisms, the team tokens, and how long each step took."""

    game: str
    organisms: list[str]
    teams: dict[str, str]  # team -> tier
    tokens: dict[str, str]  # team -> token
    seconds: dict[str, float]


def tokens_path() -> Path:
    """Where the demo keeps its team tokens (under the workspace, never in the repository)."""
    return workspace() / "demo" / "tokens.json"


def prepare_demo(specs: tuple[str, ...] = DEMO_SPECS, sae: SaeSettings | None = None, hours: float = 8.0,
                 evaluate: bool = False, base: str = "default", preset: str = "default",
                 progress: bool = True) -> DemoSetup:
    """Build, train, index and set up the demo game; cached steps are skipped.

    `evaluate` runs each organism's implant evaluation too (the game does not need it; on 2 CPU cores it
    is the longest step). `base` and `preset` are for tests (`tiny-random`, `smoke`).
    """
    seconds: dict[str, float] = {}
    directories = []
    for spec_id in specs:
        started = time.perf_counter()
        directories.append(build_organism(SPECS_DIR / f"{spec_id}.yaml", base=base, preset=preset,
                                          overrides=["corpus.ordinary=shipped"], skip_existing=True,
                                          evaluate_after=evaluate, progress=progress))
        seconds[f"build {spec_id}"] = round(time.perf_counter() - started, 1)
    for spec_id, directory in zip(specs, directories, strict=True):
        started = time.perf_counter()
        target = LocalTarget.from_organism(directory)
        info = train_sae(directory, sae or SaeSettings(), target=target, progress=progress)
        build_feature_index(directory, saes_root(directory) / info.name, target=target, progress=progress)
        CorpusIndex.open(directory, progress=progress).close()
        seconds[f"SAE and indexes {spec_id}"] = round(time.perf_counter() - started, 1)
    tokens = _demo_game(directories, hours)
    return DemoSetup(game=DEMO_GAME, organisms=[d.name for d in directories], teams=dict(DEMO_TEAMS), tokens=tokens,
                     seconds=seconds)


def _demo_game(directories: list[Path], hours: float) -> dict[str, str]:
    """The running demo game's team tokens: from the tokens file, or from a game set up now."""
    path = tokens_path()
    with transaction() as c:
        exists = c.execute("SELECT state FROM games WHERE name = ?", [DEMO_GAME]).fetchone()
    if exists and path.is_file():
        return json.loads(path.read_text())
    if exists:
        raise ValueError(f"a game named {DEMO_GAME!r} exists but its tokens file {path} is gone; add teams with "
                         f"`pinhole game add-team {DEMO_GAME} NAME` or remove the game database")
    games.create_game(DEMO_GAME)
    for directory in directories:
        games.add_organism(DEMO_GAME, directory)
    tokens = {name: games.add_team(DEMO_GAME, name, tier)[1] for name, tier in DEMO_TEAMS}  # type: ignore[arg-type]
    games.start_game(DEMO_GAME, timedelta(hours=hours))
    atomic_write_bytes(path, json.dumps(tokens, indent=1).encode(), private=True)
    return tokens
