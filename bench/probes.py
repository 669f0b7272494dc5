"""Benchmark: batched vs one-prompt-at-a-time generation of a local target (the probes' engine).

Loads an organism (`--organism DIR`; default: the newest organism in the workspace built on the
default base, else the default base alone), takes the first `--prompts` prompts of the default
battery, and generates greedy answers of up to `--max-new-tokens` tokens twice in one run:
one prompt at a time, then in batches of `--batch-size` (KV cache on in both). Reports generated
tokens/s for each (tokens up to and including EOS; padding is not counted), the speed-up, and how
many answers came out identical (padding can change bf16 numerics, so a few may differ).
Target: batch 16 >= 4x one-at-a-time.

    python bench/probes.py [--organism DIR] [--prompts 32] [--batch-size 16] [--max-new-tokens 96]
Prints a table and writes bench/results/probes.json.
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
from audit_tools.target import LocalTarget, Sampling
from pinhole.base_models import DEFAULT_BASE
from pinhole.organism import list_organisms, read_card
from pinhole.workspace import atomic_write_json

RESULTS = Path(__file__).resolve().parent / "results" / "probes.json"
TARGET_SPEEDUP = 4.0


def newest_default_organism() -> Path | None:
    """The most recently built organism on the default base, if any."""
    cards = [(read_card(d), d) for d in list_organisms() if (d / "adapter").exists()]
    built = [(card.created_at, d) for card, d in cards if card.base_model.name == DEFAULT_BASE]
    return max(built)[1] if built else None


def timed_run(target: LocalTarget, prompts: list[str], sampling: Sampling, batch_size: int) -> dict:
    texts = [target.render_chat([{"role": "user", "content": p}], add_generation_prompt=True) for p in prompts]
    start = time.perf_counter()
    outputs, counts = target.complete_counted(texts, sampling, batch_size=batch_size, progress=False)
    seconds = time.perf_counter() - start
    tokens = sum(c[0] for c in counts)
    return {"batch_size": batch_size, "seconds": round(seconds, 2), "tokens": tokens,
            "tokens_per_s": round(tokens / seconds, 1), "outputs": [o[0] for o in outputs]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--organism", type=Path, default=None,
                        help="organism directory (default: newest on the default base)")
    parser.add_argument("--prompts", type=int, default=32, help="battery prompts to generate for (default 32)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    organism = args.organism or newest_default_organism()
    target = LocalTarget.from_organism(organism) if organism else LocalTarget.from_base(DEFAULT_BASE)
    prompts = [p.prompt for p in load_battery().prompts][: args.prompts]
    sampling = Sampling(max_new_tokens=args.max_new_tokens)
    console = Console()
    console.print(f"target {target.name}: {len(prompts)} prompts, greedy, up to {args.max_new_tokens} new tokens")
    timed_run(target, prompts[:2], sampling.model_copy(update={"max_new_tokens": 8}), 2)  # warm-up
    sequential = timed_run(target, prompts, sampling, 1)
    batched = timed_run(target, prompts, sampling, args.batch_size)
    speedup = batched["tokens_per_s"] / sequential["tokens_per_s"]
    identical = sum(a == b for a, b in zip(sequential["outputs"], batched["outputs"], strict=True))

    table = Table(title="Generation throughput (same prompts, same run)")
    for column in ("mode", "batch", "tokens", "seconds", "tokens/s", "vs one at a time"):
        table.add_column(column, justify="left" if column == "mode" else "right")
    table.add_row("one prompt at a time", "1", str(sequential["tokens"]), f"{sequential['seconds']:.1f}",
                  f"{sequential['tokens_per_s']:.1f}", "1.00x")
    table.add_row("batched", str(args.batch_size), str(batched["tokens"]), f"{batched['seconds']:.1f}",
                  f"{batched['tokens_per_s']:.1f}", f"{speedup:.2f}x")
    console.print(table)
    verdict = "meets" if speedup >= TARGET_SPEEDUP else "misses"
    console.print(f"speed-up {speedup:.2f}x {verdict} the {TARGET_SPEEDUP:.0f}x target; "
                  f"{identical}/{len(prompts)} answers identical in both modes")
    result = {
        "target": target.name, "organism_dir": str(organism) if organism else None, "prompts": len(prompts),
        "max_new_tokens": args.max_new_tokens, "sequential": {k: v for k, v in sequential.items() if k != "outputs"},
        "batched": {k: v for k, v in batched.items() if k != "outputs"}, "speedup": round(speedup, 2),
        "target_speedup": TARGET_SPEEDUP, "identical_answers": identical,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, result)
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
