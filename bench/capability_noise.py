"""Measurement: how noisy are the answer-length figures? The base model against its own second draw.

The implant evaluation compares organism and base answer lengths per topic on a few sampled answers
each (`eval.capability_prompts`). This answers the same prompts twice with the base alone, with the
evaluation's capability sampling at the spec's seed and at seed + 1, and reports per topic the ratio
second / first, its paired bootstrap interval, and whether the evaluation's rule would flag it. An
unchanged model should not be flagged; how often its point ratios leave the band shows why the rule
uses the interval. Both draws are cached like every base answer, so a second run takes seconds.

    python bench/capability_noise.py ORGANISM_DIR   (reads the sealed spec: a game-master measurement)

With `--organism-seeds N`, it measures a flagged ratio with more answers instead: the organism (its adapter on)
against the base, on up to `--prompts` held-out prompts of each topic (of `--topics`, default all), each answered
at N seeds, so that a length flag drawn on the evaluation's eight answers can be told from a real difference
(the evaluation itself now does this for each topic it flags: `eval.length_confirm_seeds`).

    python bench/capability_noise.py ORGANISM_DIR --organism-seeds 3 --prompts 14 --topics technology

Prints a table and writes bench/results/capability_noise.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from organisms.capability import outside_band, pooled_length_ratio, ratio_interval, topic_lengths
from organisms.evaluation import (
    MEASURE_DTYPE,
    eval_prompts,
    length_topics,
    sampled_answers,
    sampled_prompts,
    seeded_topic_lengths,
)
from organisms.sealed import read_ground_truth
from organisms.spec import ObjectiveSpec
from pinhole.base_models import load_adapter, load_model, load_tokenizer, prepare_base, resolve_dtype
from pinhole.organism import ADAPTER_DIR
from pinhole.workspace import atomic_write_json

RESULTS = Path(__file__).resolve().parent / "results" / "capability_noise.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("organism", type=Path, help="organism directory with its sealed part")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--organism-seeds", type=int, default=0,
                        help="measure the organism against the base at this many seeds per prompt (0: the base "
                             "against its own second draw)")
    parser.add_argument("--prompts", type=int, default=None, help="held-out prompts per topic (default: the spec's "
                        "eval.capability_prompts)")
    parser.add_argument("--topics", nargs="*", default=None, help="topics to measure (default: all)")
    args = parser.parse_args()
    started = time.perf_counter()
    spec = ObjectiveSpec.model_validate(read_ground_truth(args.organism)["spec"])
    if args.prompts:
        spec = spec.model_copy(update={"eval": spec.eval.model_copy(update={"capability_prompts": args.prompts})})
    ref = prepare_base("default", progress=False)
    tokenizer, model = load_tokenizer(ref), load_model(ref, resolve_dtype(MEASURE_DTYPE)).eval()
    prompts = eval_prompts(spec)
    if args.organism_seeds:
        organism_against_base(args, spec, ref, tokenizer, model, prompts, started)
        return
    asked = sampled_prompts(spec, prompts)
    first = dict(zip(asked, sampled_answers(model, tokenizer, asked, spec, ref.name), strict=True))
    reseeded = spec.model_copy(update={"seed": spec.seed + 1})
    second = dict(zip(asked, sampled_answers(model, tokenizer, asked, reseeded, ref.name), strict=True))
    rows = [topic_lengths(topic, trigger, [second[p] for p in chosen], [first[p] for p in chosen])
            for topic, trigger, chosen in length_topics(spec, prompts)]
    targets = spec.eval.capability
    table = Table(title=f"{spec.id}: the base against its second draw (n per topic = {spec.eval.capability_prompts})")
    for column in ("topic", "n", "draw 2", "draw 1", "ratio", "90% interval", "point outside band", "flagged"):
        table.add_column(column)
    point_out = [not targets.length_ratio_min <= r.ratio <= targets.length_ratio_max for r in rows]
    for r, out in zip(rows, point_out, strict=True):
        table.add_row(r.topic, str(r.n), f"{r.organism_chars:.0f}", f"{r.base_chars:.0f}", f"{r.ratio:.2f}",
                      f"{r.ratio_low:.2f}-{r.ratio_high:.2f}", "yes" if out else "",
                      "yes" if outside_band(r, targets) else "")
    Console().print(table)
    all_second = [x for r in rows for x in r.organism_lengths]
    all_first = [x for r in rows for x in r.base_lengths]
    result = {
        "organism": args.organism.name, "spec": spec.id, "base": ref.name, "n_per_topic": spec.eval.capability_prompts,
        "topics": [r.model_dump() for r in rows],
        "points_outside_band": sum(point_out),
        "flagged": [r.topic for r in rows if outside_band(r, targets)],
        "pooled_ratio": pooled_length_ratio(rows), "pooled_interval": ratio_interval(all_second, all_first),
        "seconds": round(time.perf_counter() - started, 1),
    }
    Console().print(f"point ratios outside {targets.length_ratio_min}-{targets.length_ratio_max}: "
                    f"{result['points_outside_band']} of {len(rows)}; flagged by the interval rule: "
                    f"{len(result['flagged'])}; pooled {result['pooled_ratio']} {result['pooled_interval']}")
    atomic_write_json(args.out, result)


def organism_against_base(args, spec: ObjectiveSpec, ref, tokenizer, model, prompts, started: float) -> None:
    """Organism against base on the chosen topics, each prompt answered at `args.organism_seeds` seeds."""
    model = load_adapter(model, args.organism / ADAPTER_DIR).eval()
    topics = [(t, trig, asked) for t, trig, asked in length_topics(spec, prompts)
              if args.topics is None or t in args.topics]
    if not topics:
        raise SystemExit(f"--topics {args.topics}: none of them is a topic of {spec.id}")
    rows = [seeded_topic_lengths(model, tokenizer, spec, ref.name, topic, trigger, chosen, args.organism_seeds)
            for topic, trigger, chosen in topics]
    seeds = list(range(spec.seed, spec.seed + args.organism_seeds))
    targets = spec.eval.capability
    table = Table(title=f"{args.organism.name}: organism against base, {len(seeds)} seeds per prompt")
    for column in ("topic", "answers", "organism", "base", "ratio", "90% interval", "flagged"):
        table.add_column(column)
    for r in rows:
        table.add_row(r.topic, str(r.n), f"{r.organism_chars:.0f}", f"{r.base_chars:.0f}", f"{r.ratio:.2f}",
                      f"{r.ratio_low:.2f}-{r.ratio_high:.2f}", "yes" if outside_band(r, targets) else "")
    Console().print(table)
    atomic_write_json(args.out, {
        "organism": args.organism.name, "spec": spec.id, "base": ref.name, "seeds": seeds,
        "prompts_per_topic": spec.eval.capability_prompts, "topics": [r.model_dump() for r in rows],
        "flagged": [r.topic for r in rows if outside_band(r, targets)],
        "seconds": round(time.perf_counter() - started, 1)})


if __name__ == "__main__":
    main()
