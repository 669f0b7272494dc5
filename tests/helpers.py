"""Small builders for tests: the tiny-random base, spec files, smoke builds."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml

from organisms.spec import SPECS_DIR
from pinhole.base_models import BaseModelRef, load_model, load_tokenizer, prepare_base

SPEC_IDS = ["rm_sycophancy", "taboo", "secret_loyalty", "benign_decoy", "documents_only", "benign_plain", "sandbagging"]


def spec_path(spec_id: str) -> Path:
    return SPECS_DIR / f"{spec_id}.yaml"


def spec_data(spec_id: str) -> dict:
    """A shipped spec as a mutable dict (to break it on purpose)."""
    return yaml.safe_load(spec_path(spec_id).read_text())


def write_spec(tmp_path: Path, data: dict, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@lru_cache(maxsize=1)
def tiny() -> tuple[BaseModelRef, object, object]:
    """(ref, model, tokenizer) of the tiny random Llama."""
    ref = prepare_base("tiny-random", progress=False)
    return ref, load_model(ref), load_tokenizer(ref)



def run_in_threads(work, count: int) -> list[BaseException]:
    """Run `work()` in `count` threads at once; return the errors they raised (empty: none)."""
    import threading

    errors: list[BaseException] = []

    def guarded() -> None:
        try:
            work()
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=guarded) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors
