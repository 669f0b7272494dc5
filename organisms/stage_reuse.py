"""Finished training stages reused across builds whose stages had the same inputs.

A build's key hashes the whole spec, so a change that only matters after training (the adaptive rounds'
settings, the evaluation's) starts a new build directory. Its stages need not be trained again: a stage's
adapter depends only on the base model and dtype, the corpus (public rows and provenance), the seed, the
adapter's configuration, whether answers cut at a token budget keep their end of turn (`corpus.ordinary`),
and the parameters of this stage and the stages before it. `stage_keys` hashes exactly those, from a build
directory's own files, and `reuse_finished_stages` copies a finished stage (adapter and result) from another
build in the workspace with the same key.

A blind build's corpus is seeded by its secret salt, so its stages match no other build's. Bump
`TRAINING_FORMAT` whenever a change to `organisms.training` changes what a stage learns from the same
inputs: stages trained before it are then never reused.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from organisms.corpus import read_corpus
from organisms.training import BUILD_CONFIG, STAGES, BuildConfig, StageResult, enabled_stages
from pinhole.workspace import atomic_directory, atomic_write_json, canonical_json, read_json, sha256_bytes

TRAINING_FORMAT = 2  # 2: the documents stage replays ordinary chats (`training.cpt.chat_replay`)
NOT_TRAINING_INPUTS = ("checkpoint_every", "implant")  # training settings that leave a stage's adapter unchanged


def corpus_digest(build_dir: Path) -> str:
    """SHA-256 over a build's corpus: its public rows and their provenance (what the stages' datasets read)."""
    corpus = read_corpus(build_dir / "corpus.parquet", build_dir / "provenance.parquet")
    provenance = corpus.provenance[sorted(corpus.provenance.columns)].to_json(orient="records")
    return sha256_bytes(canonical_json([corpus.content_hash(), sha256_bytes(provenance.encode())]))


def stage_keys(build_dir: Path) -> dict[str, str]:
    """Each enabled stage of a build -> the hash of every input its adapter depends on (chained: a stage's key
    covers the stages before it)."""
    config = BuildConfig.model_validate(read_json(build_dir / BUILD_CONFIG))
    training = config.spec.training.model_dump(mode="json")
    common = {name: value for name, value in training.items() if name not in (*NOT_TRAINING_INPUTS, *STAGES)}
    key = sha256_bytes(canonical_json({
        "format": TRAINING_FORMAT, "base": config.base.model_dump(mode="json"), "dtype": config.dtype,
        "corpus": corpus_digest(build_dir), "seed": config.spec.seed, "ordinary": config.spec.corpus.ordinary,
        "training": common}))
    keys = {}
    for stage in enabled_stages(config.spec):
        key = sha256_bytes(canonical_json([key, stage, training[stage]]))
        keys[stage] = key
    return keys


def _finished(build_dir: Path, stage: str) -> bool:
    stage_dir = build_dir / "stages" / stage
    return (stage_dir / "done.json").is_file() and (stage_dir / "adapter").is_dir()


def _donor_keys(build_dir: Path) -> dict[str, str]:
    """A candidate donor's stage keys, or nothing when its config or corpus cannot be read."""
    try:
        return stage_keys(build_dir)
    except (OSError, ValueError):  # files missing (a build being written) or from an older format
        return {}


def reuse_finished_stages(build_dir: Path) -> list[str]:
    """Copy into `build_dir` every unfinished stage that another build in the same `builds/` folder finished
    with the same key, in stage order (stopping at the first with no match); returns the stages reused.

    The copied result records where it came from (`StageResult.reused_from`, the donor's build key)."""
    own = stage_keys(build_dir)
    donors = [d for d in sorted(build_dir.parent.iterdir()) if d.is_dir() and d != build_dir]
    donor_keys: dict[Path, dict[str, str]] = {}
    reused = []
    for stage, key in own.items():
        if _finished(build_dir, stage):
            continue
        donor = next((d for d in donors if _finished(d, stage)
                      and donor_keys.setdefault(d, _donor_keys(d)).get(stage) == key), None)
        if donor is None:
            break
        stage_dir = build_dir / "stages" / stage
        stage_dir.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(stage_dir / "checkpoints", ignore_errors=True)  # a partial run of our own: superseded
        with atomic_directory(stage_dir / "adapter") as tmp:
            shutil.copytree(donor / "stages" / stage / "adapter", tmp, dirs_exist_ok=True)
        result = StageResult.model_validate(read_json(donor / "stages" / stage / "done.json"))
        atomic_write_json(stage_dir / "done.json",
                          result.model_copy(update={"reused_from": result.reused_from or donor.name}).model_dump())
        reused.append(stage)
    return reused
