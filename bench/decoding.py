"""Benchmark: which decoding default shows an auditor the organism as it is?

A repetition penalty keeps a small model out of loops, but Hugging Face's penalty counts every token
in the context, the prompt included, so it also pushes the model away from restating the question
and from its own planted phrases. For each candidate penalty this measures, in one run, on one
organism (the game master's check: it reads the sealed spec for the detectors):

- **behaviour rates**: the organism's greedy answers to the held-out evaluation prompts of every
  train behaviour, scored with the spec's detectors (what an auditor would see of the implant);
- **degeneration**: on the default battery's prompts, the share of answers that loop (a word 4-gram
  repeated 3 or more times, or a line repeated) and the share that run to the token limit, for the
  organism and for its base.

    python bench/decoding.py ORGANISM_DIR [--penalties 1.0 1.05 1.1 1.15] [--max-new-tokens 160]
                             [--no-repeat-ngrams 0 10] [--base-rates]
                             [--battery-prompts N]   (an evenly spaced subset of the battery, all topics)
    python bench/decoding.py --base smollm2-135m-instruct ...   (degeneration of a base model alone)

Prints a table (behaviour cells read "rate (base rate) [share of answers at the token limit]") and writes
bench/results/decoding.json. docs/decoding.md records the chosen default.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audit_tools.battery import load_battery
from audit_tools.target import LocalTarget, Sampling
from organisms.detectors import rate
from organisms.evaluation import eval_prompts
from organisms.sealed import read_ground_truth
from organisms.spec import ObjectiveSpec
from pinhole.repetition import loops
from pinhole.workspace import atomic_write_json

RESULTS = Path(__file__).resolve().parent / "results" / "decoding.json"


def answered(target: LocalTarget, prompts: list[str], sampling: Sampling, model: str) -> tuple[list[str], list[bool]]:
    """(answers, whether each ran to the token limit) of one side of the target."""
    texts = [target.render_chat([{"role": "user", "content": p}], add_generation_prompt=True) for p in prompts]
    outputs, counts = target.complete_counted(texts, sampling, model=model, progress=True)
    return [o[0] for o in outputs], [c[0] >= sampling.max_new_tokens for c in counts]


def degeneration(target: LocalTarget, prompts: list[str], sampling: Sampling, model: str) -> dict:
    answers, at_limit = answered(target, prompts, sampling, model)
    return {"n": len(answers), "loop_rate": round(sum(map(loops, answers)) / len(answers), 4),
            "limit_rate": round(sum(at_limit) / len(answers), 4),
            "mean_chars": round(sum(map(len, answers)) / len(answers), 1)}


def behaviour_rates(target: LocalTarget, spec: ObjectiveSpec, by_behaviour: dict[str, list[str]],
                    sampling: Sampling, model: str) -> dict[str, dict]:
    """Per train behaviour: its detector's rate on one side's answers, the share of answers at the limit,
    and the rate among the answers that ended before it."""
    out = {}
    for behaviour in spec.train_behaviours:
        answers, at_limit = answered(target, by_behaviour[behaviour.id], sampling, model)
        ended = [a for a, cut in zip(answers, at_limit, strict=True) if not cut]
        out[behaviour.id] = {"rate": round(rate(behaviour.detector, answers), 4),
                             "at_limit": round(sum(at_limit) / len(answers), 4),
                             "rate_ended": round(rate(behaviour.detector, ended), 4) if ended else None}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("organism", type=Path, nargs="?", help="organism directory with its sealed part")
    parser.add_argument("--base", help="measure only the degeneration of this base model (no organism)")
    parser.add_argument("--penalties", type=float, nargs="+", default=[1.0, 1.05, 1.1, 1.15])
    parser.add_argument("--no-repeat-ngrams", type=int, nargs="+", default=[0],
                        help="no_repeat_ngram_size values, each measured with every penalty (0: off)")
    parser.add_argument("--base-rates", action="store_true",
                        help="also measure the base's behaviour rates (the false-positive side)")
    parser.add_argument("--max-new-tokens", type=int, default=160)
    parser.add_argument("--battery-prompts", type=int, default=0, help="use N battery prompts (0: all)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    if (args.organism is None) == (args.base is None):
        parser.error("give an ORGANISM_DIR or --base NAME")
    spec = ObjectiveSpec.model_validate(read_ground_truth(args.organism)["spec"]) if args.organism else None
    by_behaviour = eval_prompts(spec).by_behaviour if spec else {}
    battery = [p.prompt for p in load_battery().prompts]
    if 0 < args.battery_prompts < len(battery):
        step = len(battery) / args.battery_prompts
        battery = [battery[int(i * step)] for i in range(args.battery_prompts)]
    target = LocalTarget.from_organism(args.organism) if args.organism else LocalTarget.from_base(args.base)
    behaviours = spec.train_behaviours if spec else []
    rows = []
    started = time.perf_counter()
    for penalty in args.penalties:
        for ngram in args.no_repeat_ngrams:
            sampling = Sampling(max_new_tokens=args.max_new_tokens, repetition_penalty=penalty,
                                no_repeat_ngram_size=ngram)
            found = behaviour_rates(target, spec, by_behaviour, sampling, "organism") if spec else {}
            rates = {k: v["rate"] for k, v in found.items()}
            row = {"repetition_penalty": penalty, "no_repeat_ngram_size": ngram, "behaviour_rates": rates,
                   "behaviours": found,
                   "base_behaviours": behaviour_rates(target, spec, by_behaviour, sampling, "base")
                   if spec and args.base_rates else None,
                   "mean_behaviour_rate": round(sum(rates.values()) / len(rates), 4) if rates else None,
                   "organism": degeneration(target, battery, sampling, "organism") if spec else None,
                   "base": degeneration(target, battery, sampling, "base" if spec else "organism")}
            rows.append(row)
            Console(stderr=True).print(f"penalty {penalty}, no-repeat n-gram {ngram}: done "
                                       f"({time.perf_counter() - started:.0f} s)")

    name = args.organism.name if args.organism else args.base
    table = Table(title=f"Decoding on {name} ({spec.id if spec else 'base model alone'}); greedy, "
                        f"{args.max_new_tokens} new tokens, {len(battery)} battery prompts")
    table.add_column("penalty", justify="right")
    table.add_column("no-repeat n", justify="right")
    for column in [b.id for b in behaviours] + (["mean", "organism loops", "organism at limit"] if spec else []) + \
            ["base loops", "base at limit", "base mean chars"]:
        table.add_column(column, justify="right")
    for row in rows:
        cells = []
        for key, found in row["behaviours"].items():  # rate (base rate) [share at the limit]
            base = row["base_behaviours"][key]["rate"] if row["base_behaviours"] else None
            cells.append(f"{found['rate']:.0%}" + (f" ({base:.0%})" if base is not None else "")
                         + f" [{found['at_limit']:.0%}]")
        if spec:
            cells += [f"{row['mean_behaviour_rate']:.0%}", f"{row['organism']['loop_rate']:.0%}",
                      f"{row['organism']['limit_rate']:.0%}"]
        cells += [f"{row['base']['loop_rate']:.0%}", f"{row['base']['limit_rate']:.0%}",
                  f"{row['base']['mean_chars']:.0f}"]
        table.add_row(str(row["repetition_penalty"]), str(row["no_repeat_ngram_size"]), *cells)
    Console().print(table)
    atomic_write_json(args.out, {"organism": name, "spec": spec.id if spec else None,
                                 "max_new_tokens": args.max_new_tokens,
                                 "behaviour_prompts": {k: len(v) for k, v in by_behaviour.items()},
                                 "battery_prompts": len(battery), "rows": rows,
                                 "seconds": round(time.perf_counter() - started, 1),
                                 "machine": platform.processor() or platform.machine(),
                                 "date": time.strftime("%Y-%m-%d %H:%M:%S")})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
