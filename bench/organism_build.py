"""Benchmark: where the time of an organism build goes, and what the training framework costs.

Part 1 (always): LoRA training throughput on the *same batches* (taken from TRL's own data
loader over the shipped haystack chats, SFT format, loss on the assistant turn), all in one run,
each with its ratio to the plain loop (see VARIANTS):
  - a plain PyTorch + PEFT loop (forward, backward, AdamW step) with transformers' defaults,
    and the same loop with Pinhole's loss (logits only where a trained token is predicted);
  - TRL's SFTTrainer with its default settings;
  - Pinhole's trainer with SDPA and LoRA in every layer (its overhead is its ratio to the plain
    loop with the same loss), then with eager attention, then with LoRA in the top N layers only (--top-layers).
The first step of each is warm-up and not timed. The benchmark runs under the allocator that
`pinhole` itself selects (tcmalloc where installed).
Part 2: the same Pinhole-configured TRL run under other memory allocators, each in its own
process (glibc's malloc maps and unmaps every large tensor, so the kernel zero-fills pages on
every step; jemalloc and tcmalloc keep them).
Part 3 (when a built organism is given or found): time per build stage from its card.

    python bench/organism_build.py [--base smollm2-135m-instruct] [--steps 10] [--batch-size 8]
Prints a table and writes bench/results/organism_build.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table
from transformers import TrainerCallback

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from organisms import organism_dir as od  # noqa: E402
from organisms.allocator import reexec_with_fast_allocator  # noqa: E402
from organisms.artifacts import atomic_write_json  # noqa: E402
from organisms.base_models import load_model, load_tokenizer, prepare_base, resolve_dtype  # noqa: E402
from organisms.haystack import load_haystack  # noqa: E402
from organisms.spec import load_spec  # noqa: E402
from organisms.training import (  # noqa: E402
    lean_causal_lm_loss, lora_config, make_stage_trainer, trainer_args, training_attention,
)

console = Console()


class StepTimer(TrainerCallback):
    """Wall time of each optimizer step."""

    def __init__(self) -> None:
        self.durations: list[float] = []
        self._start = 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.durations.append(time.perf_counter() - self._start)


def timed_training(trainer) -> float:
    """Train and return the seconds of every optimizer step but the first (warm-up)."""
    timer = StepTimer()
    trainer.add_callback(timer)
    trainer.train()
    return sum(timer.durations[1:])


def sft_dataset(n: int):
    from datasets import Dataset

    chats = [r for r in load_haystack() if r["kind"] == "chat"][:n]
    return Dataset.from_dict({"prompt": [[{"role": "user", "content": r["prompt"]}] for r in chats],
                              "completion": [[{"role": "assistant", "content": r["text"]}] for r in chats]})


def make_trainer(base, spec, dataset, steps: int, batch_size: int, out: Path, *, stock_trl: bool = False,
                 attention: str = "sdpa", top_layers: int | None = None):
    """An SFT trainer over `dataset`: Pinhole's (`make_stage_trainer`) or, with `stock_trl`, TRL's own
    SFTTrainer with its default settings (its loss, gradient checkpointing on)."""
    from trl import SFTConfig, SFTTrainer

    dtype = resolve_dtype("auto")
    training = spec.training.model_copy(update={"attention": attention, "lora_top_layers": top_layers})
    params = training.sft.model_copy(update={"max_steps": steps, "batch_size": batch_size})
    args = trainer_args(params, out, spec, dtype)
    args.update(save_strategy="no", logging_steps=1000, disable_tqdm=True)
    tokenizer = load_tokenizer(base)
    tokenizer.padding_side = "right"
    model = load_model(base, dtype, attn_implementation=training_attention(attention)).train()
    lora = lora_config(training, model)
    if stock_trl:
        args.pop("activation_checkpointing")  # TRL's default: on
        return SFTTrainer(model=model, args=SFTConfig(completion_only_loss=True, **args), train_dataset=dataset,
                          processing_class=tokenizer, peft_config=lora)
    return make_stage_trainer("sft", model, tokenizer, dataset, args, lora, spec)


def plain_loop(trainer, batches: list[dict], lean: bool) -> list[float]:
    """The trainer's LoRA model and the same batches, trained by hand: forward, loss, backward, AdamW step.

    `lean`: Pinhole's loss (logits only where a trained token is predicted), else the model's own loss."""
    model = trainer.model
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4)
    autocast = trainer.args.bf16
    durations = []
    for batch in batches:
        started = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            if lean:
                loss, _ = lean_causal_lm_loss(model, batch)
            else:
                loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        durations.append(time.perf_counter() - started)
    return durations


# name: (description, trainer settings, plain loop with the lean loss or not); None = a plain loop
VARIANTS = {
    "plain_loop": "plain PyTorch+PEFT loop: transformers' loss, SDPA, LoRA in every layer",
    "plain_loop_lean_loss": "the same loop with Pinhole's loss (logits only where a trained token is predicted)",
    "trl_defaults": "TRL's SFTTrainer, default settings (its loss, gradient checkpointing)",
    "pinhole_trainer": "Pinhole's trainer (TRL + the lean loss), SDPA, LoRA in every layer",
    "pinhole_trainer_eager": "+ eager attention (Pinhole's CPU default)",
}
TOP_LAYERS_VARIANT = "pinhole_trainer_eager_top{n}"  # + LoRA in the top n layers only (--top-layers)


ALLOCATORS = {
    "glibc": {},
    "glibc_hugetlb": {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"},
    "jemalloc": {"LD_PRELOAD": "libjemalloc.so.2"},
    "tcmalloc": {"LD_PRELOAD": "libtcmalloc_minimal.so.4"},
}


def allocator_run(args) -> float:
    """Seconds for the timed steps of the tuned TRL run, in this process (called in a child)."""
    base = prepare_base(args.base, progress=False)
    spec = load_spec("rm_sycophancy")
    dataset = sft_dataset((args.steps + 1) * args.batch_size)
    trainer = make_trainer(base, spec, dataset, args.steps + 1, args.batch_size, Path("bench/results/tmp/alloc"),
                           attention="eager", top_layers=spec.training.lora_top_layers)
    return timed_training(trainer)


def compare_allocators(args) -> dict:
    results = {}
    for name, env in ALLOCATORS.items():
        command = [sys.executable, __file__, "--allocator-child", "--base", args.base, "--steps", str(args.steps),
                   "--batch-size", str(args.batch_size)]
        inherited = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "GLIBC_TUNABLES")}
        done = subprocess.run(command, env={**inherited, **env}, capture_output=True, text=True)
        lines = [line for line in done.stdout.splitlines() if line.startswith("ALLOCATOR_SECONDS=")]
        results[name] = float(lines[-1].split("=")[1]) if lines else None
        if not lines:
            console.print(f"[yellow]{name}: run failed[/yellow] {done.stderr[-500:]}")
    return results


def stage_times(organism: Path | None) -> dict | None:
    if organism is None:
        candidates = [d for d in od.list_organisms() if od.read_card(d).preset == "default"]
        if not candidates:
            return None
        organism = max(candidates, key=lambda d: od.read_card(d).created_at)
    card = od.read_card(organism)
    return {"organism": str(organism), "timings": card.timings,
            "stages": [{k: s.get(k) for k in ("stage", "steps", "tokens", "runtime_s", "tokens_per_s")}
                       for s in card.training]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="smollm2-135m-instruct")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per variant (plus one warm-up)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--top-layers", type=int, nargs="*", default=[15, 20],
                        help="also time LoRA in only the top N decoder layers, for each N given")
    parser.add_argument("--organism", type=Path, default=None, help="organism whose stage times to report")
    parser.add_argument("--out", type=Path, default=Path("bench/results/organism_build.json"))
    parser.add_argument("--skip-allocators", action="store_true", help="skip part 2")
    parser.add_argument("--allocator-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.allocator_child:
        reexec_with_fast_allocator()  # as the `pinhole` command does, so that figures match a build
    if args.allocator_child:
        print(f"ALLOCATOR_SECONDS={allocator_run(args)}")
        return

    base = prepare_base(args.base)
    spec = load_spec("rm_sycophancy")
    dataset = sft_dataset((args.steps + 1) * args.batch_size)
    results = {"base": base.name, "dtype": str(resolve_dtype("auto")), "threads": torch.get_num_threads(),
               "batch_size": args.batch_size, "timed_steps": args.steps, "variants": {}}

    work = Path("bench/results/tmp")
    steps = args.steps + 1
    reference = make_trainer(base, spec, dataset, steps, args.batch_size, work / "pinhole_trainer")
    loader = reference.get_train_dataloader()
    batches = [reference._prepare_inputs(b) for _, b in zip(range(steps), loader, strict=False)]
    tokens = [int(b["attention_mask"].sum()) for b in batches]
    timed_tokens = sum(tokens[1:])
    results["tokens_per_timed_run"] = timed_tokens
    results["mean_sequence_length"] = round(sum(tokens) / (len(tokens) * args.batch_size), 1)
    results["trained_token_share"] = round(sum(int((b["labels"] != -100).sum()) for b in batches) / sum(tokens), 3)

    seconds: dict[str, float] = {}
    for lean, name in ((False, "plain_loop"), (True, "plain_loop_lean_loss")):
        trainer = make_trainer(base, spec, dataset, 1, args.batch_size, work / name)
        seconds[name] = sum(plain_loop(trainer, batches, lean)[1:])
    seconds["trl_defaults"] = timed_training(
        make_trainer(base, spec, dataset, steps, args.batch_size, work / "trl_defaults", stock_trl=True))
    seconds["pinhole_trainer"] = timed_training(reference)
    seconds["pinhole_trainer_eager"] = timed_training(
        make_trainer(base, spec, dataset, steps, args.batch_size, work / "eager", attention="eager"))
    for n in args.top_layers:
        name = TOP_LAYERS_VARIANT.format(n=n)
        VARIANTS[name] = f"+ LoRA in the top {n} layers only (backpropagation stops below them)"
        seconds[name] = timed_training(
            make_trainer(base, spec, dataset, steps, args.batch_size, work / name, attention="eager", top_layers=n))

    table = Table(title=f"LoRA training throughput, {base.name}, batch {args.batch_size}, same batches")
    for column in ("variant", "seconds", "tokens/s", "vs plain loop", "what"):
        table.add_column(column, justify="left" if column in ("variant", "what") else "right")
    plain_s = seconds["plain_loop"]
    for name, value in seconds.items():
        results["variants"][name] = {"seconds": round(value, 2), "tokens_per_s": round(timed_tokens / value, 1),
                                     "speed_vs_plain": round(plain_s / value, 3), "what": VARIANTS[name]}
        table.add_row(name, f"{value:.1f}", f"{timed_tokens / value:.0f}", f"{plain_s / value:.2f}x", VARIANTS[name])
    results["trainer_overhead"] = round(seconds["plain_loop_lean_loss"] / seconds["pinhole_trainer"], 3)
    console.print(table)
    console.print(f"Pinhole's trainer vs a plain loop with the same loss: {results['trainer_overhead']:.2f}x")

    if not args.skip_allocators:
        seconds = compare_allocators(args)
        glibc = seconds.get("glibc")
        alloc_table = Table(title="Pinhole-configured TRL run under each allocator (own process, same batches)")
        for column in ("allocator", "seconds", "tokens/s", "vs glibc"):
            alloc_table.add_column(column, justify="right" if column != "allocator" else "left")
        results["allocators"] = {}
        for name, value in seconds.items():
            if value is None:
                alloc_table.add_row(name, "failed", "", "")
                continue
            results["allocators"][name] = {"seconds": round(value, 2), "tokens_per_s": round(timed_tokens / value, 1),
                                           "speed_vs_glibc": round(glibc / value, 3) if glibc else None}
            alloc_table.add_row(name, f"{value:.1f}", f"{timed_tokens / value:.0f}",
                                f"{glibc / value:.2f}x" if glibc else "")
        console.print(alloc_table)

    stages = stage_times(args.organism)
    results["build"] = stages
    if stages:
        build_table = Table(title=f"Build stages of {Path(stages['organism']).name}")
        for column in ("stage", "seconds", "tokens", "tokens/s"):
            build_table.add_column(column, justify="right" if column != "stage" else "left")
        for key, seconds in stages["timings"].items():
            stage = next((s for s in stages["stages"] if f"{s['stage']}_s" == key), {})
            build_table.add_row(key.removesuffix("_s"), f"{seconds:.1f}", str(stage.get("tokens", "")),
                                str(stage.get("tokens_per_s", "")))
        console.print(build_table)
    else:
        console.print("No default-preset organism in the workspace: build one for per-stage times.")
    atomic_write_json(args.out, results)
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
