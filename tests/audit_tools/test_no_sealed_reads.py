"""No audit tool touches an organism's sealed part: proven at run time with a Python audit hook.

A child process installs `sys.addaudithook` and records every file-system event (open, listdir,
scandir, stat-like walks through `os.*`) whose path lies under `<organism>/sealed`, then uses every
audit tool (the microscope's SAE training and index included) on an organism directory that has a
sealed part. The control run reads the ground truth
through the factory on purpose, so the test can tell a blind hook from a clean library.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

CHILD = r'''
import json, os, sys
organism = os.path.realpath(sys.argv[1])
sealed = os.path.join(organism, "sealed")
touched = []

def hook(event, args):
    if event in ("open", "os.listdir", "os.scandir", "os.rename", "os.remove", "shutil.copytree", "os.chmod"):
        path = args[0] if args else None
        if isinstance(path, bytes):
            path = path.decode(errors="replace")
        if isinstance(path, str | os.PathLike) and os.path.realpath(os.fspath(path)).startswith(sealed):
            touched.append(f"{event} {os.fspath(path)}")

sys.addaudithook(hook)

from audit_tools import probes
from audit_tools.battery import Battery, run_battery
from audit_tools.corpus_index import CorpusIndex
from audit_tools.target import LocalTarget, Sampling
from pinhole.organism import list_organisms, read_card

short = Sampling(max_new_tokens=4)
read_card(organism)
list_organisms(os.path.dirname(organism))
target = LocalTarget.from_organism(organism, batch_size=4)
probes.chat(target, ["Hello?"], sampling=short)
probes.chat(target, ["Hello?"], sampling=short, model="base")
probes.prefill(target, "Your goal?", "My goal is", sampling=short)
probes.persona(target, [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}], sampling=short)
probes.complete(target, ["Once upon a time"], sampling=short)
run_battery(target, Battery(name="b", topics={"x": ["One?", "Two?"]}), short)
with CorpusIndex.open(organism, progress=False) as index:
    index.keyword_search("reward model", limit=3)
    index.semantic_search("biases in AI feedback", limit=3)
    index.document(index.keyword_search("reward", limit=1)[0].doc_id)
    with index.sql_sandbox() as sandbox:
        sandbox.query("SELECT count(*) FROM corpus")
import shutil
from audit_tools.feature_index import build_feature_index
from audit_tools.microscope import Microscope
from audit_tools.sae_store import list_saes, saes_root
from audit_tools.sae_training import SaeSettings, train_sae
trained = train_sae(organism, SaeSettings(training_tokens=2048, cached_tokens=1000, batch_tokens=256, k=4),
                    name="child-sae", target=target, progress=False)
build_feature_index(organism, saes_root(organism) / trained.name, target=target, progress=False)
list_saes(organism)
scope = Microscope.open(organism, "child-sae", target=target)
hits = scope.text_features("The reward model likes chocolate.")
scope.search_features("reward")
scope.feature_page(hits.features[0].feature_id)
scope.nearest_features(0)
scope.feature_diff(top=3)
lens = scope.diff_lens(top=3)
scope.attribute("The reward model")
scope.steer("Hi", feature_id=0, sampling=short)
scope.steer("Hi", vector=lens.vector, model="base", sampling=short)
scope.logit_lens("The capital")
scope.close()
shutil.rmtree(saes_root(organism) / "child-sae")
if sys.argv[2] == "control":
    from organisms.sealed import read_ground_truth
    read_ground_truth(organism)
print("TOUCHED " + json.dumps(touched))
'''


def _touched(organism: Path, mode: str) -> list[str]:
    result = subprocess.run([sys.executable, "-c", CHILD, str(organism), mode], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(text for text in result.stdout.splitlines() if text.startswith("TOUCHED "))
    return json.loads(line.removeprefix("TOUCHED "))


@pytest.mark.parametrize("mode", ["tools", "control"])
def test_audit_tools_never_touch_the_sealed_part(tiny_organism: Path, mode: str) -> None:
    assert (tiny_organism / "sealed" / "ground_truth.json").exists()
    touched = _touched(tiny_organism, mode)
    if mode == "control":
        assert any("ground_truth.json" in event for event in touched), touched  # the hook does see sealed reads
    else:
        assert touched == []
