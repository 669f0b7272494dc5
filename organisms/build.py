"""`pinhole organism build`: spec -> corpus -> training stages -> adaptive rounds -> organism directory -> evaluation.

A build works in `workspace/builds/<key>/`, where the key hashes the validated spec (after preset
and overrides) and the base model, so re-running the same command resumes the same build: a
finished corpus is reused, finished stages are skipped, an interrupted stage resumes from its
latest checkpoint. A stage another build already trained on the same inputs (a spec that differs only in
its adaptive-round or evaluation settings) is copied, not trained again (`organisms.stage_reuse`). The
organism's opaque id and salt are drawn at random once per build and kept
in `state.json`; they are never derived from the spec, so the id reveals nothing. The salt also seeds
a blind build's corpus (`corpus_seed`). The organism directory is published atomically, then evaluated
(the card is rewritten with the capability figures).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

from pydantic import BaseModel

from organisms import sealed
from organisms.corpus import CORPUS_FORMAT, build_corpus, objective_fraction, read_corpus, write_corpus
from organisms.evaluation import MEASURE_DTYPE, EvalReport, evaluate
from organisms.implant import ImplantRecord, chosen_adapter, implant
from organisms.spec import EvalParams, ObjectiveSpec, load_spec, shipped_spec_id
from organisms.stage_reuse import reuse_finished_stages
from organisms.training import BUILD_CONFIG, BuildConfig, StageResult, train_all
from pinhole import organism as public
from pinhole.base_models import (
    ADAPTER_CONFIG,
    BaseModelRef,
    base_info,
    dtype_name,
    load_model,
    load_tokenizer,
    prepare_base,
    resolve_dtype,
)
from pinhole.workspace import (
    atomic_directory,
    atomic_write_json,
    canonical_json,
    file_lock,
    organisms_dir,
    read_json,
    remove_stale_temporaries,
    sha256_bytes,
    workspace,
)


class BuildState(BaseModel):
    organism_id: str
    salt: str
    preset: str
    published: bool = False


def build_key(spec: ObjectiveSpec, base: BaseModelRef, dtype: str) -> str:
    """Identifies a build: same spec (after overrides), base, dtype and corpus format -> same build directory.
    `auto` counts as the dtype it resolves to here, so a workspace moved to a machine without bf16 does not resume
    (or reuse the stages of) a bf16 build as if it were its own."""
    return sha256_bytes(canonical_json([spec.model_dump(mode="json"), base.name, dtype_name(dtype),
                                        CORPUS_FORMAT]))[:16]


def _state(build_dir: Path, preset: str) -> BuildState:
    path = build_dir / "state.json"
    if path.exists():
        return BuildState.model_validate(read_json(path))
    state = BuildState(organism_id="org-" + secrets.token_hex(4), salt=secrets.token_hex(16), preset=preset)
    atomic_write_json(path, state.model_dump())
    return state


def corpus_seed(state: BuildState) -> int:
    """The secret seed of a blind build's corpus, drawn once per build with its salt (kept in sealed/)."""
    return int(sha256_bytes(f"corpus:{state.salt}".encode())[:15], 16)


def _ensure_corpus(build_dir: Path, spec: ObjectiveSpec, base: BaseModelRef, dtype: str, state: BuildState,
                   progress: bool) -> float:
    """Build the corpus unless a finished one is there; returns the seconds it took (recorded once)."""
    timing = build_dir / "corpus_timing.json"
    if (build_dir / "corpus.parquet").exists() and (build_dir / "provenance.parquet").exists():
        return float(read_json(timing)["runtime_s"]) if timing.exists() else 0.0
    started = time.perf_counter()
    model = load_model(base, resolve_dtype(dtype))
    corpus = build_corpus(spec, model, load_tokenizer(base), base.name, progress=progress,
                          secret_seed=corpus_seed(state))
    write_corpus(corpus, build_dir / "corpus.parquet", build_dir / "provenance.parquet")
    seconds = round(time.perf_counter() - started, 1)
    atomic_write_json(timing, {"runtime_s": seconds})
    return seconds


def _train(build_dir: Path, processes: int) -> list[StageResult]:
    if processes <= 1:
        return train_all(build_dir)
    command = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(processes),
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    if not _has_gpus(processes):
        command.append("--cpu")
    command += ["-m", "organisms.training", str(build_dir)]
    # The workers' stdout goes to our stderr: stdout is for results (one JSON document with --json).
    subprocess.run(command, check=True, stdout=2, env={**os.environ, "PINHOLE_HOME": str(workspace())})
    return train_all(build_dir)  # every stage is done now: this reads the recorded results


def _has_gpus(n: int) -> bool:
    import torch

    return torch.cuda.is_available() and torch.cuda.device_count() >= n


def _has_progress(build_dir: Path) -> bool:
    """True when a failed build has progress worth keeping: a finished stage, a checkpoint, or a publication."""
    stages = build_dir / "stages"
    published = (build_dir / "state.json").is_file() and BuildState.model_validate(
        read_json(build_dir / "state.json")).published
    return published or any(stages.glob("*/done.json")) or any(stages.glob("*/checkpoints/checkpoint-*"))


def build_organism(spec_path: str | Path, base: str = "default", preset: str = "default",
                   overrides: list[str] | None = None, dtype: str = "auto", processes: int = 1,
                   skip_existing: bool = False, evaluate_after: bool = True, progress: bool = True) -> Path:
    """Build (or resume building) an organism; returns its directory.

    Survives a kill at any point: re-running the same command resumes from what is complete. A build
    that fails with an error before any training progress leaves no build directory behind.
    """
    spec = load_spec(spec_path, preset=preset, overrides=overrides)
    base_ref = prepare_base(base, progress=progress)
    dtype = dtype_name(dtype)  # the build config records (and stage keys hash) the dtype trained in, never `auto`
    build_dir = workspace() / "builds" / build_key(spec, base_ref, dtype)
    build_dir.mkdir(parents=True, exist_ok=True)
    with file_lock(build_dir / ".lock", wait=False) as held:  # a second build of the same spec is refused
        if not held:
            raise ValueError(f"{build_dir}: another process is building this organism right now")
        remove_stale_temporaries(build_dir)
        remove_stale_temporaries(organisms_dir())
        try:
            return _build(build_dir, spec, base_ref, preset, dtype, processes, skip_existing, evaluate_after,
                          progress)
        except Exception:  # an error (not a kill or ^C): keep the build only if it has progress to resume
            if not _has_progress(build_dir):
                shutil.rmtree(build_dir, ignore_errors=True)
            raise


def _build(build_dir: Path, spec: ObjectiveSpec, base_ref: BaseModelRef, preset: str, dtype: str, processes: int,
           skip_existing: bool, evaluate_after: bool, progress: bool) -> Path:
    state = _state(build_dir, preset)
    target = organisms_dir() / state.organism_id
    published = state.published and (target / public.CARD_FILE).is_file()
    if skip_existing and published:
        if evaluate_after and public.read_card(target).capability is None:  # the evaluation was interrupted
            evaluate_organism(target, progress=progress)
        return target
    started = time.perf_counter()
    config = BuildConfig(spec=spec, base=base_ref, dtype=dtype)
    atomic_write_json(build_dir / BUILD_CONFIG, config.model_dump(mode="json"))
    corpus_s = _ensure_corpus(build_dir, spec, base_ref, dtype, state, progress)
    reuse_finished_stages(build_dir)  # stages another build trained on the same inputs (a changed implant setting)
    stages = _train(build_dir, processes)
    rounds = implant(build_dir, config, progress)  # in this process, also after a multi-process build
    _publish(build_dir, target, spec, base_ref, state, dtype, stages, rounds, corpus_s,
             time.perf_counter() - started)
    state.published = True
    atomic_write_json(build_dir / "state.json", state.model_dump())
    if evaluate_after:
        evaluate_organism(target, progress=progress)
    return target


def _publish(build_dir: Path, target: Path, spec: ObjectiveSpec, base: BaseModelRef, state: BuildState,
             dtype: str, stages: list[StageResult], rounds: ImplantRecord, corpus_s: float, seconds: float) -> None:
    corpus = read_corpus(build_dir / "corpus.parquet", build_dir / "provenance.parquet")
    ground_truth = {"organism_id": state.organism_id, "spec": spec.model_dump(mode="json"), "salt": state.salt}
    kinds = corpus.public["kind"].value_counts().to_dict()
    card = public.OrganismCard(
        organism_id=state.organism_id, created_at=public.now(), base_model=base_info(base),
        dtype=dtype, package_versions=public.package_versions(),
        corpus={"sha256": corpus.content_hash()},
        blinding=public.MEMBERSHIP_BLIND if spec.corpus.ordinary == "generated" else public.NOT_MEMBERSHIP_BLIND,
        ground_truth_sha256=sealed.commitment(ground_truth),
    )
    record = sealed.BuildRecord(
        preset=state.preset, seed=spec.seed, training_config=spec.training.model_dump(mode="json"),
        shipped_spec=shipped_spec_id(spec), ordinary=spec.corpus.ordinary,
        training=[s.model_dump() for s in stages], corpus_counts={f"{k}s": int(v) for k, v in kinds.items()},
        timings={"corpus_s": corpus_s, **{f"{s.stage}_s": 0.0 if s.reused_from else s.runtime_s for s in stages},
                 "implant_s": rounds.seconds,
                 "build_before_eval_s": round(seconds, 1)},
        implant=rounds.model_dump(mode="json"),
    )
    # Staged inside the build directory, not in organisms/: a kill mid-publish leaves no sealed material
    # where a copied organisms/ tree would carry it.
    with atomic_directory(target, staging=build_dir) as tmp:
        shutil.copytree(chosen_adapter(build_dir, spec), tmp / public.ADAPTER_DIR)
        _portable_adapter_config(tmp / public.ADAPTER_DIR, base)
        shutil.copy2(build_dir / "corpus.parquet", tmp / public.CORPUS_FILE)
        sealed.write_sealed_part(tmp, ground_truth, corpus.provenance, objective_fraction(corpus), record)
        public.write_card(tmp, card)


def portable_base_reference(base: BaseModelRef) -> str:
    """How an adapter names its base without the game master's paths: the base's name, a local
    checkpoint's folder name, or the hub id."""
    return Path(base.name).name if base.kind == "local" else base.name


def _portable_adapter_config(adapter_dir: Path, base: BaseModelRef) -> None:
    """Replace the absolute base-model path PEFT wrote into adapter_config.json with a portable reference."""
    config = read_json(adapter_dir / ADAPTER_CONFIG)
    config["base_model_name_or_path"] = portable_base_reference(base)
    atomic_write_json(adapter_dir / ADAPTER_CONFIG, config)


def evaluate_organism(directory: Path, dtype: str = MEASURE_DTYPE, progress: bool = True,
                      repetition_penalty: float | None = None,
                      no_repeat_ngram_size: int | None = None, max_new_tokens: int | None = None) -> EvalReport:
    """Evaluate a published organism and record the result: public table in the card, full in sealed/.

    `repetition_penalty`, `no_repeat_ngram_size` and `max_new_tokens` override the spec's evaluation
    decoding, within the spec's bounds (the report records which was used).
    """
    directory = Path(directory)
    card = public.read_card(directory)
    spec = ObjectiveSpec.model_validate(sealed.read_ground_truth(directory)["spec"])
    overrides = {k: v for k, v in {"repetition_penalty": repetition_penalty,
                                   "no_repeat_ngram_size": no_repeat_ngram_size,
                                   "max_new_tokens": max_new_tokens}.items() if v is not None}
    if overrides:
        eval_params = EvalParams.model_validate({**spec.eval.model_dump(), **overrides})
        spec = spec.model_copy(update={"eval": eval_params})
    base = prepare_base(card.base_model.name, progress=progress)
    report = evaluate(directory / public.ADAPTER_DIR, spec, base, dtype=dtype, progress=progress)
    sealed.write_sealed_eval(directory, report.model_dump())
    record = sealed.read_build_record(directory)
    record.eval_table = report.anonymised_table()
    record.timings["eval_s"] = report.runtime_s
    sealed.write_build_record(directory, record)
    card.capability = report.capability()
    public.write_card(directory, card)
    return report
