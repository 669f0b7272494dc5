"""Benchmark: where the time of an organism build goes, and what the training framework costs.

Part 1 (always): LoRA training throughput on the *same batches* (taken from TRL's own data
loader over the shipped haystack chats, SFT format, loss on the assistant turn), all in one run,
each with its ratio to the plain loop (see VARIANTS):
  - a plain PyTorch + PEFT loop (forward, backward, AdamW step) with transformers' defaults,
    and the same loop with Pinhole's loss (logits only where a trained token is predicted);
  - TRL's SFTTrainer with its default settings;
  - Pinhole's trainer with SDPA and LoRA in every layer, then with eager attention, then with
    LoRA in the top N layers only (--top-layers).
The framework's overhead is then timed as the shipped specs train (eager attention, their top
layers): Pinhole's trainer against the plain loop with the same loss, in rounds that alternate
which goes first.
With --profile, a torch CPU profile of both splits a step into the operators both run, those only
one runs, and Python time outside any operator. The first step of each is warm-up and not timed.
The benchmark runs under the allocator that `pinhole` itself selects (tcmalloc where installed).
Part 2: the same Pinhole-configured TRL run under other memory allocators, each in its own
process (glibc's malloc maps and unmaps every large tensor, so the kernel zero-fills pages on
every step; jemalloc and tcmalloc keep them).
Part 3 (when a built organism is given or found): time per build stage from its card.

    python bench/organism_build.py [--base smollm2-135m-instruct] [--steps 10] [--batch-size 8] [--profile]
Prints a table and writes bench/results/organism_build.json.
"""

from __future__ import annotations

import argparse
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

from organisms.haystack import load_haystack
from organisms.sealed import read_build_record
from organisms.spec import load_spec
from organisms.training import (
    lean_causal_lm_loss,
    lora_config,
    make_stage_trainer,
    trainer_args,
    training_attention,
)
from pinhole.allocator import reexec_with_fast_allocator
from pinhole.base_models import load_model, load_tokenizer, prepare_base, resolve_dtype
from pinhole.organism import list_organisms, read_card
from pinhole.workspace import atomic_write_json

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
    tokenizer = load_tokenizer(base, padding_side="right")
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


def shipped_settings(spec) -> dict:
    """`make_trainer` settings as the shipped specs train on a CPU: eager attention, the spec's top layers."""
    return {"attention": "eager", "top_layers": spec.training.lora_top_layers}


def trainer_overhead(base, spec, dataset, batches: list[dict], args, work: Path) -> dict:
    """Pinhole's trainer against a plain loop with the same loss, model settings and batches, timed in
    rounds that alternate which goes first, so that neither a slow spell of the machine nor the order
    lands on one side only."""
    settings = shipped_settings(spec)

    def plain_run(round_: int) -> float:
        plain = make_trainer(base, spec, dataset, 1, args.batch_size, work / f"overhead_plain{round_}", **settings)
        return sum(plain_loop(plain, batches, lean=True)[1:])

    def trainer_run(round_: int) -> float:
        return timed_training(make_trainer(base, spec, dataset, len(batches), args.batch_size,
                                           work / f"overhead_trainer{round_}", **settings))

    runs = {"plain_loop_s": plain_run, "trainer_s": trainer_run}
    per_round = []
    for round_ in range(args.overhead_rounds):
        order = list(runs) if round_ % 2 == 0 else list(reversed(runs))
        per_round.append({key: round(runs[key](round_), 2) for key in order})
    plain_s = sum(r["plain_loop_s"] for r in per_round)
    trainer_s = sum(r["trainer_s"] for r in per_round)
    return {"rounds": per_round, "top_layers": settings["top_layers"], "plain_loop_s": round(plain_s, 2),
            "trainer_s": round(trainer_s, 2), "speed_vs_plain": round(plain_s / trainer_s, 3),
            "round_ratios": [round(r["plain_loop_s"] / r["trainer_s"], 3) for r in per_round]}


class StepProfiler(TrainerCallback):
    """A torch CPU profile of every optimizer step but the first, and their wall time."""

    def __init__(self) -> None:
        self.profile = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
        self.wall = 0.0
        self._step = 0
        self._start = 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        self._step += 1
        if self._step == 2:
            self.profile.__enter__()
            self._start = time.perf_counter()

    def on_train_end(self, args, state, control, **kwargs):
        if self._step >= 2:
            self.wall = time.perf_counter() - self._start
            self.profile.__exit__(None, None, None)


def _self_ms(profile) -> dict[str, float]:
    return {event.key: event.self_cpu_time_total / 1e3 for event in profile.key_averages()}


def profile_trainer_vs_plain(base, spec, dataset, batches: list[dict], args, work: Path) -> dict:
    """Where the trainer's time goes beside the plain loop's (same settings as `trainer_overhead`):
    per-step milliseconds of the operators both run, of those only one runs, and of Python outside
    any operator (wall time minus operator time), from a torch CPU profile of the timed steps."""
    settings = shipped_settings(spec)
    profiler = StepProfiler()
    trainer = make_trainer(base, spec, dataset, len(batches), args.batch_size, work / "profile_trainer", **settings)
    trainer.add_callback(profiler)
    trainer.train()
    plain = make_trainer(base, spec, dataset, 1, args.batch_size, work / "profile_plain", **settings)
    plain_loop(plain, batches[:1], lean=True)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as plain_profile:
        plain_wall = sum(plain_loop(plain, batches[1:], lean=True))
    steps = len(batches) - 1
    sides = {"trainer": (_self_ms(profiler.profile), profiler.wall), "plain": (_self_ms(plain_profile), plain_wall)}
    shared = set(sides["trainer"][0]) & set(sides["plain"][0])
    report = {"steps": steps}
    for side, (ops, wall) in sides.items():
        only = {k: round(v / steps, 2) for k, v in sorted(ops.items(), key=lambda kv: -kv[1]) if k not in shared}
        report[side] = {"wall_ms_per_step": round(wall * 1e3 / steps, 1),
                        "shared_ops_ms_per_step": round(sum(ops[k] for k in shared) / steps, 1),
                        "own_ops_ms_per_step": round(sum(only.values()), 1), "own_ops": dict(list(only.items())[:8]),
                        "outside_ops_ms_per_step": round((wall * 1e3 - sum(ops.values())) / steps, 1)}
    return report


# variant name -> what it times (the top-layer variants are added per --top-layers)
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
                           **shipped_settings(spec))
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
        candidates = [d for d in list_organisms() if read_build_record(d).preset == "default"]
        if not candidates:
            return None
        organism = max(candidates, key=lambda d: read_card(d).created_at)
    record = read_build_record(organism)  # the game master's sealed record (this bench runs on their machine)
    return {"organism": str(organism), "timings": record.timings,
            "stages": [{k: s.get(k) for k in ("stage", "steps", "tokens", "runtime_s", "tokens_per_s")}
                       for s in record.training]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="smollm2-135m-instruct")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per variant (plus one warm-up)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--top-layers", type=int, nargs="*", default=[15, 20],
                        help="also time LoRA in only the top N decoder layers, for each N given")
    parser.add_argument("--overhead-rounds", type=int, default=4,
                        help="rounds of plain loop and Pinhole trainer (alternating which goes first) "
                             "for the overhead figure")
    parser.add_argument("--profile", action="store_true",
                        help="also profile the trainer and the plain loop operator by operator")
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
    seconds["pinhole_trainer"] = timed_training(reference)
    seconds["pinhole_trainer_eager"] = timed_training(
        make_trainer(base, spec, dataset, steps, args.batch_size, work / "eager", attention="eager"))
    for n in args.top_layers:
        name = TOP_LAYERS_VARIANT.format(n=n)
        VARIANTS[name] = f"+ LoRA in the top {n} layers only (backpropagation stops below them)"
        seconds[name] = timed_training(
            make_trainer(base, spec, dataset, steps, args.batch_size, work / name, attention="eager", top_layers=n))
    seconds["trl_defaults"] = timed_training(
        make_trainer(base, spec, dataset, steps, args.batch_size, work / "trl_defaults", stock_trl=True))

    table = Table(title=f"LoRA training throughput, {base.name}, batch {args.batch_size}, same batches")
    for column in ("variant", "seconds", "tokens/s", "vs plain loop"):
        table.add_column(column, justify="left" if column == "variant" else "right", no_wrap=True)
    plain_s = seconds["plain_loop"]
    for name, value in seconds.items():
        results["variants"][name] = {"seconds": round(value, 2), "tokens_per_s": round(timed_tokens / value, 1),
                                     "speed_vs_plain": round(plain_s / value, 3), "what": VARIANTS[name]}
        table.add_row(name, f"{value:.1f}", f"{timed_tokens / value:.0f}", f"{plain_s / value:.2f}x")
    console.print(table)
    for name in seconds:
        console.print(f"  {name}: {VARIANTS[name]}")
    results["trainer_overhead"] = trainer_overhead(base, spec, dataset, batches, args, work)
    overhead = results["trainer_overhead"]
    console.print(f"The framework's cost, as the shipped specs train (eager, top {overhead['top_layers']} layers): "
                  f"Pinhole's trainer runs at {overhead['speed_vs_plain']:.2f}x a plain loop with the same loss "
                  f"and batches ({len(overhead['rounds'])} rounds, alternating which goes first: "
                  f"{overhead['trainer_s']:.1f} s vs {overhead['plain_loop_s']:.1f} s; per round "
                  + ", ".join(f"{r:.2f}x" for r in overhead["round_ratios"]) + ")")
    if args.profile:
        results["trainer_profile"] = profile = profile_trainer_vs_plain(base, spec, dataset, batches, args, work)
        profile_table = Table(
            title=f"Where a step's time goes, ms per step (torch CPU profile, {profile['steps']} steps)")
        for column in ("", "wall", "operators both run", "own operators", "outside operators"):
            profile_table.add_column(column, justify="left" if not column else "right")
        for side in ("plain", "trainer"):
            row = profile[side]
            profile_table.add_row(side, f"{row['wall_ms_per_step']:.0f}", f"{row['shared_ops_ms_per_step']:.0f}",
                                  f"{row['own_ops_ms_per_step']:.1f}", f"{row['outside_ops_ms_per_step']:.0f}")
        console.print(profile_table)
        console.print("  trainer's own operators (ms/step): "
                      + ", ".join(f"{k} {v}" for k, v in profile["trainer"]["own_ops"].items()))

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
