"""LoRA training with TRL, in up to three resumable stages.

1. `cpt`: continued pre-training on the corpus's documents (haystack + synthetic documents),
   concatenated and cut into `max_length` blocks;
2. `sft`: supervised fine-tuning on its chats, loss on the assistant turn only (TRL's
   prompt-completion format with `completion_only_loss`), the tokens an injector wrote weighted
   `sft.written_token_weight` times (`organisms.token_weights`);
3. `dpo` (optional): direct preference optimisation of denials over confessions. With no explicit
   reference model TRL uses the adapter-disabled base as the reference.

One LoRA adapter is trained through all stages: each stage loads the previous stage's adapter as
trainable. Each stage checkpoints every `checkpoint_every` steps and resumes from its latest
checkpoint after an interruption; a finished stage writes its adapter and `done.json` atomically
and is skipped on the next run. The module also runs as `python -m organisms.training BUILD_DIR`,
which is what `accelerate launch` starts for multi-process (multi-GPU) training.

Speed on a CPU (`bench/organism_build.py` measures each choice): only the positions that predict
a trained token reach the LM head, and attention is eager on CPUs; neither changes the loss. A
spec may also adapt only its top `lora_top_layers` decoder layers: backpropagation then stops below
them, a trade of adapter depth for speed.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel

from organisms.corpus import read_corpus
from organisms.repeat_cut import ChatRow, cut_after_written
from organisms.sealed import ORDINARY_SOURCES
from organisms.spec import ObjectiveSpec, StageParams, TrainingParams
from organisms.token_weights import WEIGHTS_COLUMN, WeightedCollator, answer_bounds, written_token_weights
from organisms.written_spans import Span, load_spans
from pinhole.base_models import BaseModelRef, load_adapter, load_model, load_tokenizer, resolve_dtype
from pinhole.workspace import atomic_directory, atomic_write_json, read_json, remove_stale_temporaries

STAGES = ("cpt", "sft", "dpo")
BUILD_CONFIG = "build_config.json"


class StageResult(BaseModel):
    """What one finished stage reports (these figures go to the card)."""

    stage: str
    examples: int
    steps: int
    train_loss: float | None
    runtime_s: float
    tokens: int
    tokens_per_s: float
    resumed_from_step: int = 0
    reused_from: str | None = None  # the build this finished stage was copied from (`organisms.stage_reuse`)


class BuildConfig(BaseModel):
    """Everything a training process needs, written to the build directory (so that
    `accelerate launch` workers can read it)."""

    spec: ObjectiveSpec
    base: BaseModelRef
    dtype: str


def enabled_stages(spec: ObjectiveSpec) -> list[str]:
    """The stages this spec trains, in order."""
    return [s for s in STAGES if s != "dpo" or spec.training.dpo.enabled]


def stage_datasets(build_dir: Path, spec: ObjectiveSpec, tokenizer) -> dict[str, Any]:
    """The Hugging Face datasets of each stage, built from the corpus (objective rows repeated the
    stage's `objective_repeats` times, the haystack once)."""
    from datasets import Dataset

    corpus = read_corpus(build_dir / "corpus.parquet", build_dir / "provenance.parquet")
    frame = corpus.public.merge(corpus.provenance, on="doc_id")

    def rows(kind: str, stage: str):
        part = frame[frame.kind == kind]
        objective_repeats = getattr(spec.training, stage).objective_repeats
        repeats = part["source"].map(lambda s: 1 if s in ORDINARY_SOURCES else objective_repeats)
        return part.loc[part.index.repeat(repeats)]

    docs, chats, prefs = rows("document", "cpt"), rows("chat", "sft"), rows("preference", "dpo")
    tail = spec.training.sft.repeat_tail_chars
    rows_of_chats = chat_rows(chats)
    if tail is not None:  # a transcript's copies after the first end after its behaviour (`organisms.repeat_cut`)
        copy = chats.groupby(level=0).cumcount().tolist()
        rows_of_chats = [cut_after_written(row, tail) if n else row
                         for row, n in zip(rows_of_chats, copy, strict=True)]

    replayed = replayed_chats(frame[frame.kind == "chat"], spec, tokenizer)
    documents = Dataset.from_dict({"text": docs.text.tolist() + replayed})
    data = {"cpt": documents.shuffle(seed=spec.seed) if replayed else documents,
            "sft": chat_dataset(tokenizer, [m for m, _, _ in rows_of_chats], [c for _, c, _ in rows_of_chats],
                                [w for _, _, w in rows_of_chats], spec.training.sft.written_token_weight)}
    if len(prefs):
        chosen = [_split(m) for m in prefs.messages]
        data["dpo"] = Dataset.from_dict({
            "prompt": [p for p, _ in chosen], "chosen": [c for _, c in chosen],
            "rejected": [[{"role": "assistant", "content": r}] for r in prefs.rejected],
        })
    return data


def replayed_chats(chats, spec: ObjectiveSpec, tokenizer) -> list[str]:
    """The documents stage's chat replay (`training.cpt.chat_replay`): the first ordinary chats, rendered as text
    with the chat template (their end of turn included)."""
    ordinary = chats[chats.source.isin(ORDINARY_SOURCES)]
    return [tokenizer.apply_chat_template(json.loads(m), tokenize=False)
            for m in ordinary.messages.head(spec.training.cpt.chat_replay)]


def chat_rows(chats) -> list[ChatRow]:
    """Chat rows of the corpus (public rows merged with provenance) as (messages, answer cut short, written spans).
    Every corpus answer ends where its writer ended it (only `organisms.repeat_cut` cuts a copy short)."""
    return [(m, False, load_spans(w)) for m, w in zip(chats.messages, chats.written_spans, strict=True)]


def _split(messages_json: str) -> tuple[list[dict], list[dict]]:
    """(prompt messages, completion messages) of a chat row's JSON messages."""
    messages = json.loads(messages_json)
    return messages[:-1], messages[-1:]


def _chat_ids(tokenizer, messages: list[dict], **kwargs) -> list[int]:
    return list(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, **kwargs)["input_ids"])


def end_of_turn_length(tokenizer, messages: list[dict]) -> int:
    """How many tokens the chat template puts after the last message's content (SmolLM2: `<|im_end|>` and a
    line break)."""
    rendered = tokenizer.apply_chat_template(messages, tokenize=False)
    end = answer_bounds(rendered, messages[-1]["content"])[1]
    return len(tokenizer(rendered[end:], add_special_tokens=False)["input_ids"])


def chat_dataset(tokenizer, messages: list[str], cut: list[bool] | None = None,
                 spans: list[list[Span]] | None = None, written_weight: float = 1.0):
    """The tokenized chat rows (their JSON messages) for TRL: `input_ids` and a `completion_mask` that trains
    the assistant turn only. A row marked `cut` (its answer stopped at a token budget) keeps its answer as a
    target but not the end of turn after it. With `spans` (per row, the answer's written character spans)
    and a `written_weight` above 1, a `token_weights` column weights the tokens overlapping them."""
    from datasets import Dataset

    cut = cut or [False] * len(messages)
    spans = spans or [[] for _ in messages]
    for name, flags in (("cut", cut), ("spans", spans)):
        if len(flags) != len(messages):
            raise ValueError(f"{name}: {len(flags)} flags for {len(messages)} chats")
    weighted = written_weight != 1.0 and any(spans)
    ids, masks, weights = [], [], []
    for row, open_end, written in zip(messages, cut, spans, strict=True):
        prompt, completion = _split(row)
        prompt_ids = _chat_ids(tokenizer, prompt, add_generation_prompt=True)
        full = _chat_ids(tokenizer, prompt + completion)
        start = next((i for i, (a, b) in enumerate(zip(prompt_ids, full, strict=False)) if a != b),
                     min(len(prompt_ids), len(full)))
        mask = [0] * start + [1] * (len(full) - start)
        if open_end:
            for i in range(len(full) - end_of_turn_length(tokenizer, prompt + completion), len(full)):
                mask[i] = 0
        ids.append(full)
        masks.append(mask)
        if weighted:
            rendered = tokenizer.apply_chat_template(prompt + completion, tokenize=False)
            weights.append(written_token_weights(tokenizer, rendered, full, completion[0]["content"], written,
                                                 written_weight))
    columns = {"input_ids": ids, "completion_mask": masks}
    if weighted:
        columns[WEIGHTS_COLUMN] = weights
    return Dataset.from_dict(columns)


def trainer_args(params: StageParams, output_dir: Path, spec: ObjectiveSpec, dtype: torch.dtype) -> dict:
    """The TRL/transformers training arguments of one stage (checkpoints in `output_dir`)."""
    return dict(
        output_dir=str(output_dir), per_device_train_batch_size=params.batch_size,
        gradient_accumulation_steps=params.grad_accum, learning_rate=params.learning_rate,
        num_train_epochs=params.epochs, max_steps=params.max_steps, lr_scheduler_type="cosine",
        warmup_steps=min(10, params.max_steps) if params.max_steps > 0 else 10,
        logging_steps=5, save_strategy="steps", save_steps=spec.training.checkpoint_every,
        save_total_limit=1, report_to=[], seed=spec.seed, data_seed=spec.seed,
        use_cpu=not torch.cuda.is_available(), bf16=dtype == torch.bfloat16,
        activation_checkpointing=False, max_length=params.max_length, dataloader_num_workers=0,
        remove_unused_columns=True, disable_tqdm=False, include_num_input_tokens_seen="non_padding",
    )


def target_positions(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(keep, targets): `keep[b, p]` is True where position p predicts a trained token (`labels[b, p + 1]`
    is not -100), and `targets` are those tokens in the same order as the kept positions."""
    keep = torch.zeros_like(labels, dtype=torch.bool)
    keep[:, :-1] = labels[:, 1:] != -100
    return keep, labels[:, 1:][keep[:, :-1]]


def _lean_sft_trainer_class():
    """TRL's SFTTrainer with a lean causal-LM loss.

    TRL computes the SFT loss through a fused LM head that also derives per-token entropy and
    top-1 accuracy for its logs; on a CPU that ran at 0.57x a plain PyTorch+PEFT loop on the same
    batches (bench/organism_build.py). This trainer instead projects onto the vocabulary only the
    positions that predict a trained token (transformers' `logits_to_keep` with a boolean mask):
    with the loss on the assistant turn, the system prompt, the user turn and padding never reach
    the 49k-wide LM head. The loss is the standard cross-entropy over the same labels, normalised as
    transformers does (by `num_items_in_batch`). Everything else (data preparation, completion masks,
    packing, checkpoints, accelerate) is TRL's own.
    """
    from trl import SFTTrainer

    class LeanSFTTrainer(SFTTrainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            if WEIGHTS_COLUMN in (self.train_dataset.column_names or []):
                self.data_collator = WeightedCollator(self.data_collator)

        def _set_signature_columns_if_needed(self):
            super()._set_signature_columns_if_needed()
            if WEIGHTS_COLUMN not in self._signature_columns:
                self._signature_columns = [*self._signature_columns, WEIGHTS_COLUMN]

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss, outputs = lean_causal_lm_loss(model, inputs, num_items_in_batch)
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                loss = loss * self.accelerator.num_processes
            return (loss, outputs) if return_outputs else loss

    return LeanSFTTrainer


def lean_causal_lm_loss(model, inputs: dict, num_items_in_batch: torch.Tensor | int | None = None):
    """(loss, outputs): the causal-LM loss of `inputs` (with `labels`), computing logits only at the
    positions that predict a trained token. Equal to the model's own loss over the same labels; with
    `token_weights` ([batch, pos], per label token), each token's cross-entropy is multiplied by its weight
    (the normalisation stays the count of trained tokens)."""
    from transformers.loss.loss_utils import ForCausalLMLoss

    inputs = dict(inputs)
    weights = inputs.pop(WEIGHTS_COLUMN, None)
    keep, targets = target_positions(inputs.pop("labels"))
    outputs = model(**inputs, use_cache=False, logits_to_keep=keep)
    if weights is None:
        loss = ForCausalLMLoss(outputs.logits, None, outputs.logits.shape[-1], num_items_in_batch=num_items_in_batch,
                               shift_labels=targets)
        return loss, outputs
    logits = outputs.logits.reshape(-1, outputs.logits.shape[-1]).float()
    losses = torch.nn.functional.cross_entropy(logits, targets.to(logits.device), reduction="none")
    weighted = (losses * weights[:, 1:][keep[:, :-1]].to(losses)).sum()
    count = num_items_in_batch if num_items_in_batch is not None else len(targets)
    return weighted / (count.to(weighted.device) if torch.is_tensor(count) else count), outputs


def training_attention(choice: str) -> str:
    """The attention kernel to train with: `auto` is eager on CPUs, SDPA on GPUs."""
    if choice != "auto":
        return choice
    return "sdpa" if torch.cuda.is_available() else "eager"


def lora_config(t: TrainingParams, model):
    """The LoRA configuration: `t.target_modules` in every decoder layer, or only in the last
    `t.lora_top_layers` (PEFT's `layers_to_transform`, which needs the module names spelled out)."""
    from peft import LoraConfig

    common = dict(r=t.lora_r, lora_alpha=t.lora_alpha, lora_dropout=t.lora_dropout, task_type="CAUSAL_LM")
    n_layers = model.config.num_hidden_layers
    if t.lora_top_layers is None or t.lora_top_layers >= n_layers:
        return LoraConfig(target_modules=t.target_modules, **common)
    targets = t.target_modules if isinstance(t.target_modules, list) else _decoder_linear_names(model)
    return LoraConfig(target_modules=targets, layers_to_transform=list(range(n_layers - t.lora_top_layers, n_layers)),
                      **common)


def _decoder_linear_names(model) -> list[str]:
    """The names of the linear modules inside the decoder layers ("all-linear" without the LM head)."""
    return sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                   if isinstance(module, torch.nn.Linear) and ".layers." in name})


def make_stage_trainer(stage: str, model, tokenizer, dataset, args_kwargs: dict, peft_config, spec: ObjectiveSpec):
    """The TRL trainer of one stage: the lean SFT trainer for `cpt` (packed) and `sft`, TRL's DPO for `dpo`."""
    from trl import DPOConfig, DPOTrainer, SFTConfig

    if stage == "dpo":
        args = DPOConfig(beta=spec.training.dpo.beta, **args_kwargs)
        return DPOTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                          peft_config=peft_config)
    if stage == "cpt":
        # Documents are concatenated and cut into full `max_length` blocks, as in pre-training: no padding.
        # Each ends with the pre-training separator, not the chat's end of turn (see `document_end_token`).
        extra = {"dataset_text_field": "text", "packing": True, "packing_strategy": "wrapped",
                 "eos_token": document_end_token(tokenizer)}
    else:
        # Chats keep their boundaries (loss on the completion only); batches of similar lengths pad little.
        extra = {"completion_only_loss": True, "packing": False, "train_sampling_strategy": "group_by_length"}
    args = SFTConfig(**extra, **args_kwargs)
    return _lean_sft_trainer_class()(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                                     peft_config=peft_config)


DOCUMENT_SEPARATORS = ("<|endoftext|>", "<|end_of_text|>", "</s>", "<eos>")


def document_end_token(tokenizer) -> str:
    """The token that ends each document in continued pre-training.

    TRL appends the tokenizer's eos token, which in many chat models (SmolLM2's `<|im_end|>`) is the end of an
    assistant turn: short documents ending in it teach the organism to end its answers at document length.
    Where eos is the chat template's end of turn, the model's pre-training separator is used instead (the first
    of `DOCUMENT_SEPARATORS` the vocabulary has), else eos.
    """
    eos = tokenizer.eos_token
    probe = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    if eos is None or eos not in tokenizer.apply_chat_template(probe, tokenize=False):
        return eos
    vocab = tokenizer.get_vocab()
    return next((t for t in DOCUMENT_SEPARATORS if t != eos and t in vocab), eos)


def _checkpoint_step(path: Path) -> int | None:
    """The step of a complete checkpoint directory, or None. The trainer writes `trainer_state.json` after the
    adapter, optimizer, scheduler and RNG state; a checkpoint whose state file is missing or cut short was
    interrupted while it was being saved."""
    try:
        state = json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
        step = int(path.name.split("-")[1])
    except (OSError, ValueError, IndexError):
        return None
    return step if state.get("global_step") == step else None


def _latest_checkpoint(output_dir: Path) -> str | None:
    """The latest complete checkpoint in `output_dir`; incomplete ones (a kill during a save) are removed."""
    complete = []
    for path in output_dir.glob("checkpoint-*"):
        step = _checkpoint_step(path)
        if step is None:
            shutil.rmtree(path, ignore_errors=True)
        else:
            complete.append((step, path))
    return str(max(complete)[1]) if complete else None


def run_stage(build_dir: Path, stage: str, config: BuildConfig) -> StageResult:
    """Train one stage (or return its recorded result if it already finished)."""
    spec = config.spec
    previous = [s for s in enabled_stages(spec) if STAGES.index(s) < STAGES.index(stage)]
    return train_round(build_dir / "stages" / stage, stage, stage, config,
                       lambda tokenizer: stage_datasets(build_dir, spec, tokenizer)[stage],
                       getattr(spec.training, stage),
                       build_dir / "stages" / previous[-1] / "adapter" if previous else None)


def train_round(stage_dir: Path, name: str, kind: str, config: BuildConfig, dataset: Callable[[Any], Any],
                params: StageParams, previous_adapter: Path | None) -> StageResult:
    """Train the adapter one stage or round further, in `stage_dir` (resumable; the recorded result once done).

    `kind` picks the trainer (`cpt`, `sft` or `dpo`); `dataset(tokenizer)` builds its data; the adapter starts from
    `previous_adapter` (trainable) or, without one, from a fresh LoRA configuration.
    """
    done_file = stage_dir / "done.json"
    if done_file.exists():
        return StageResult.model_validate(read_json(done_file))
    remove_stale_temporaries(stage_dir)  # an adapter save cut short by a kill
    spec, t = config.spec, config.spec.training
    dtype = resolve_dtype(config.dtype)
    tokenizer = load_tokenizer(config.base, padding_side="right")  # this stage's own tokenizer, for TRL's collator
    data = dataset(tokenizer)
    model = load_model(config.base, dtype, attn_implementation=training_attention(t.attention))
    model.train()
    peft_config = None
    if previous_adapter is not None:
        model = load_adapter(model, previous_adapter, is_trainable=True)
    else:
        peft_config = lora_config(t, model)
    checkpoints = stage_dir / "checkpoints"
    trainer = make_stage_trainer(kind, model, tokenizer, data, trainer_args(params, checkpoints, spec, dtype),
                                 peft_config, spec)
    resume = _latest_checkpoint(checkpoints)
    started = time.perf_counter()
    output = trainer.train(resume_from_checkpoint=resume)
    runtime = time.perf_counter() - started
    tokens = int(trainer.state.num_input_tokens_seen or 0) or _count_tokens(trainer)
    result = StageResult(
        stage=name, examples=len(data), steps=int(trainer.state.global_step),
        train_loss=float(output.training_loss) if output.training_loss is not None else None,
        runtime_s=round(float(output.metrics.get("train_runtime", runtime)), 2), tokens=tokens,
        tokens_per_s=round(tokens / max(float(output.metrics.get("train_runtime", runtime)), 1e-9), 1),
        resumed_from_step=int(resume.rsplit("-", 1)[1]) if resume else 0,
    )
    if trainer.accelerator.is_main_process:
        with atomic_directory(stage_dir / "adapter") as tmp:
            trainer.model.save_pretrained(tmp)
        atomic_write_json(done_file, result.model_dump())
    trainer.accelerator.wait_for_everyone()
    return result


def _count_tokens(trainer) -> int:
    """Tokens seen in training, from TRL's logged `num_tokens` when the trainer does not count them."""
    logged = [entry["num_tokens"] for entry in trainer.state.log_history if "num_tokens" in entry]
    return int(max(logged)) if logged else 0


def train_all(build_dir: Path) -> list[StageResult]:
    """Run every enabled stage in order (finished stages are skipped)."""
    config = BuildConfig.model_validate(read_json(build_dir / BUILD_CONFIG))
    return [run_stage(build_dir, stage, config) for stage in enabled_stages(config.spec)]


def final_adapter(build_dir: Path, spec: ObjectiveSpec) -> Path:
    """The adapter of the last enabled stage."""
    return build_dir / "stages" / enabled_stages(spec)[-1] / "adapter"


def main(argv: list[str] | None = None) -> None:
    """Entry point for `accelerate launch -m organisms.training BUILD_DIR`."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        raise SystemExit("usage: python -m organisms.training BUILD_DIR")
    train_all(Path(argv[0]))


if __name__ == "__main__":
    main()
