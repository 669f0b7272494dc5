"""Benchmark: generation in rounds (`pinhole.generation.ROUND_TOKENS`) against one long call per batch.

A batch runs until its longest row stops; with rounds, the rows still running after `--round-tokens` new
tokens are regrouped into full batches. Both modes generate greedy answers of up to `--max-new-tokens` tokens
to the first `--prompts` prompts of the default battery on the default base, in batches of `--batch-size`,
in one run (one long call first). Reports wall time, tokens generated (up to and including EOS), tokens/s,
the speed-up, and how many answers came out identical (greedy: all should, up to batch numerics).

    python bench/generation_rounds.py [--prompts 64] [--batch-size 32] [--max-new-tokens 512] [--round-tokens 256]
Prints a table and writes bench/results/generation_rounds.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audit_tools.battery import load_battery
from pinhole.base_models import DEFAULT_BASE, load_model, load_tokenizer, prepare_base, resolve_dtype
from pinhole.generation import chat_texts, generate_counted
from pinhole.workspace import atomic_write_json

RESULTS = Path(__file__).resolve().parent / "results" / "generation_rounds.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=512)
    parser.add_argument("--round-tokens", type=int, default=256)
    args = parser.parse_args()
    ref = prepare_base(DEFAULT_BASE, progress=False)
    tokenizer, model = load_tokenizer(ref), load_model(ref, resolve_dtype("auto")).eval()
    prompts = [p.prompt for p in load_battery().prompts][: args.prompts]
    texts = chat_texts(tokenizer, prompts)
    runs = {}
    for mode, rounds in (("one call", args.max_new_tokens), ("rounds", args.round_tokens)):
        started = time.perf_counter()
        answers, counts = generate_counted(model, tokenizer, texts, max_new_tokens=args.max_new_tokens,
                                           batch_size=args.batch_size, round_tokens=rounds)
        seconds = time.perf_counter() - started
        runs[mode] = {"seconds": round(seconds, 1), "tokens": sum(counts), "tok_per_s": round(sum(counts) / seconds, 1),
                      "at_limit": sum(c >= args.max_new_tokens for c in counts), "answers": answers}
    same = sum(a == b for a, b in zip(runs["one call"]["answers"], runs["rounds"]["answers"], strict=True))
    speedup = runs["one call"]["seconds"] / runs["rounds"]["seconds"]
    table = Table("mode", "wall time (s)", "tokens", "tok/s", "answers at the limit")
    for mode, run in runs.items():
        table.add_row(mode, f"{run['seconds']:.1f}", str(run["tokens"]), f"{run['tok_per_s']:.1f}",
                      str(run["at_limit"]))
    Console().print(table)
    Console().print(f"speed-up {speedup:.2f}x; identical answers {same}/{len(prompts)}")
    atomic_write_json(RESULTS, {
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "settings": vars(args), "base": ref.name, "speedup": round(speedup, 3), "identical": same,
        "runs": {m: {k: v for k, v in r.items() if k != "answers"} for m, r in runs.items()}})


if __name__ == "__main__":
    main()
