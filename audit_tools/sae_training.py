"""Train a sparse autoencoder with sae-lens on an organism's residual stream, over its public corpus.

Two phases, both resumable:
1. **Activations, cached once.** The corpus rows (documents as text, chats through the chat
   template) are shuffled with the seed; a twentieth is held out for evaluation. The rest run
   through the organism (adapter on) up to the chosen layer only, and the residual stream at every
   real token but the attention sinks (the first token, and any other of massive norm, see
   `residual.readable_positions`) is saved in chunks of 64 rows under the workspace cache
   (`activation_cache`, which the feature index reads back). A killed run keeps its finished chunks.
2. **Training** with sae-lens' own `SAETrainer` over shuffled passes of the cached activations
   (several passes fit 2 CPU cores; a fresh forward pass per training token would not), in fp32
   (sae-lens warns that bf16 hurts SAE quality), with sae-lens checkpoints to resume from.

The result is saved in sae-lens' inference format inside the organism directory (`SAE.load_from_disk`
reads it) with its measured quality (`sae_quality.measure`). Everything is cached by (organism adapter,
layer, settings): asking again returns the existing SAE.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field

from audit_tools.activation_cache import POSITIONS_READ, activation_key, cache_activations, cache_folder, corpus_texts
from audit_tools.residual import check_layer, default_layer, hook_name
from audit_tools.sae_store import SaeInfo, SaeTraining, adapter_sha256, list_saes, publish_sae
from pinhole.organism import read_card
from pinhole.workspace import cache_dir

HELD_OUT_SHARE = 0.05


class SaeSettings(BaseModel):
    """How to train an SAE. The defaults were chosen by measurement on rm_sycophancy (docs/microscope.md)."""

    model_config = ConfigDict(extra="forbid")  # a misspelt setting is an error, not a silent default

    layer: int | None = Field(default=None, description="decoder layer whose output is read; None: the middle of "
                              "the layers the adapter changes")
    architecture: str = Field(default="batchtopk", description="a sae-lens training architecture")
    expansion: int = Field(default=4, ge=1, description="features per residual dimension")
    k: float = Field(default=48, gt=0, description="active features per token (topk family; a BatchTopK SAE "
                     "saved as JumpReLU fires somewhat more or fewer per token than its batch average)")
    sparsity_coefficient: float = Field(default=1.0, gt=0, description="L1/L0 coefficient (standard, jumprelu)")
    training_tokens: int = Field(default=2_000_000, ge=1, description="activation vectors the trainer steps over")
    cached_tokens: int = Field(default=250_000, ge=1, description="distinct activations cached (passes repeat them)")
    context_tokens: int = Field(default=256, ge=8, description="tokens read per corpus row")
    batch_tokens: int = Field(default=1024, ge=1, description="activations per optimiser step: on the few million "
                              "tokens two cores afford, small batches give the optimiser and the auxiliary loss the "
                              "steps they need (at 4,096, a third of the features were dead; docs/microscope.md)")
    learning_rate: float = Field(default=2e-3, gt=0)
    dead_window_tokens: int = Field(default=100_000, ge=1, description="a feature silent this long is dead "
                                    "(the auxiliary loss of the topk family then trains it on the residual error)")
    seed: int = 0

    def key(self, organism_sha: str, layer: int) -> str:
        """The cache key of this training: organism weights, layer and every setting."""
        return _digest({"adapter": organism_sha, **self.model_dump(), "layer": layer, "positions": POSITIONS_READ})

    def activation_key(self, organism_sha: str, layer: int) -> str:
        """The cache key of the activations alone (other architectures and sizes train on the same cache)."""
        return activation_key(organism_sha, layer, self.context_tokens, self.seed)


def _digest(obj: dict) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def split_rows(n_rows: int, seed: int) -> tuple[list[int], list[int]]:
    """(training rows, held-out rows): a seeded shuffle, the last twentieth held out."""
    order = torch.randperm(n_rows, generator=torch.Generator().manual_seed(seed)).tolist()
    held = max(1, round(n_rows * HELD_OUT_SHARE)) if n_rows > 1 else 0
    return order[: n_rows - held], order[n_rows - held :]


def shuffled_batches(acts: torch.Tensor, batch: int, seed: int, skip: int = 0) -> Iterator[torch.Tensor]:
    """Endless batches of rows of `acts`, a fresh seeded permutation per pass; the first `skip` batches skipped."""
    per_pass = max(1, len(acts) // batch)
    step = skip
    while True:
        epoch, offset = divmod(step, per_pass)
        order = torch.randperm(len(acts), generator=torch.Generator().manual_seed(seed * 7919 + epoch))
        for i in range(offset, per_pass):
            yield acts[order[i * batch : (i + 1) * batch]]
            step += 1


def _training_sae(settings: SaeSettings, d_in: int, layer: int) -> Any:
    from sae_lens.registry import get_sae_training_class

    try:
        sae_class, config_class = get_sae_training_class(settings.architecture)
    except KeyError:
        from sae_lens.registry import SAE_TRAINING_CLASS_REGISTRY

        raise ValueError(f"architecture {settings.architecture!r}: expected one of "
                         f"{', '.join(sorted(SAE_TRAINING_CLASS_REGISTRY))}") from None
    fields = set(config_class.__dataclass_fields__)
    options: dict[str, Any] = {"d_in": d_in, "d_sae": d_in * settings.expansion, "dtype": "float32",
                               "normalize_activations": "expected_average_only_in"}
    if "k" in fields:
        options["k"] = settings.k if settings.architecture.endswith("batchtopk") else int(settings.k)
    for name in ("l1_coefficient", "l0_coefficient"):
        if name in fields:
            options[name] = settings.sparsity_coefficient
    config = config_class(**options)
    config.metadata.hook_name = hook_name(layer)
    torch.manual_seed(settings.seed)
    return sae_class(config)


def _latest_checkpoint(folder: Path) -> Path | None:
    done = [p for p in folder.glob("*") if p.is_dir() and p.name.isdigit() and (p / "cfg.json").is_file()]
    return max(done, key=lambda p: int(p.name)) if done else None


def train_sae(organism_dir: Path | str, settings: SaeSettings | None = None, name: str | None = None,
              target: Any = None, progress: bool = True) -> SaeInfo:
    """Train (or find, if already trained with these settings) an SAE on the organism; returns its record."""
    from sae_lens.config import SAETrainerConfig
    from sae_lens.training.sae_trainer import SAETrainer

    from audit_tools.sae_quality import measure
    from audit_tools.sae_store import read_info, write_info
    from audit_tools.target import LocalTarget

    settings = settings or SaeSettings()
    organism_dir = Path(organism_dir)
    card = read_card(organism_dir)
    organism_sha = adapter_sha256(organism_dir)
    target = target or LocalTarget.from_organism(organism_dir)
    model, tokenizer = target.model, target.tokenizer
    layer = check_layer(model, default_layer(model) if settings.layer is None else settings.layer)
    key = settings.key(organism_sha, layer)
    for info in list_saes(organism_dir):
        if info.settings.get("key") == key:
            return info  # cached: trained before with these settings on these weights
    name = name or f"layer{layer}-{settings.architecture}-{key[:8]}"
    work = cache_dir("sae", key)
    texts = corpus_texts(organism_dir, tokenizer)
    train_rows, held_rows = split_rows(len(texts), settings.seed)
    acts, activation_seconds = cache_activations(
        model, tokenizer, texts, train_rows, layer, settings.context_tokens, settings.cached_tokens,
        cache_folder(settings.activation_key(organism_sha, layer)), progress)
    checkpoints = work / "checkpoints"
    checkpoints.mkdir(exist_ok=True)
    resume_from = _latest_checkpoint(checkpoints)
    sae = _training_sae(settings, acts.shape[1], layer)
    steps = max(1, settings.training_tokens // settings.batch_tokens)
    config = SAETrainerConfig(
        total_training_samples=steps * settings.batch_tokens, train_batch_size_samples=settings.batch_tokens,
        lr=settings.learning_rate, lr_warm_up_steps=max(1, steps // 20), lr_decay_steps=steps // 5,
        lr_end=settings.learning_rate / 10,
        dead_feature_window=max(1, min(steps, settings.dead_window_tokens // settings.batch_tokens)),
        feature_sampling_window=max(10, steps // 10), n_checkpoints=min(9, max(0, steps // 50)),
        checkpoint_path=str(checkpoints),
        n_batches_for_norm_estimate=min(50, max(1, len(acts) // settings.batch_tokens)))
    skip = 0
    if resume_from is not None:
        sae.load_weights_from_checkpoint(resume_from)
    trainer = SAETrainer(cfg=config, sae=sae, data_provider=iter(()))
    if resume_from is not None:
        trainer.load_trainer_state(resume_from)
        skip = trainer.n_training_samples // settings.batch_tokens  # the checkpoint counts steps one short
        trainer.n_training_steps = skip
        trainer.checkpoint_thresholds = [t for t in trainer.checkpoint_thresholds if t > trainer.n_training_samples]
    trainer.data_provider = shuffled_batches(acts, settings.batch_tokens, settings.seed, skip=skip)
    started = time.perf_counter()
    trainer.fit()
    training_seconds = time.perf_counter() - started
    info = SaeInfo(name=name, organism_id=card.organism_id, adapter_sha256=organism_sha, layer=layer,
                   hook_name=hook_name(layer), architecture=settings.architecture, d_in=acts.shape[1],
                   d_sae=sae.cfg.d_sae, source="trained",
                   settings={**settings.model_dump(), "layer": layer, "key": key},
                   training=SaeTraining(tokens_trained=trainer.n_training_samples, cached_tokens=len(acts),
                                        steps=trainer.n_training_steps, activation_seconds=round(activation_seconds, 1),
                                        training_seconds=round(training_seconds, 1), resumed=resume_from is not None))
    folder = publish_sae(organism_dir, name, lambda tmp: sae.save_inference_model(str(tmp)), info)
    held_texts = [texts[i] for i in held_rows]
    info.quality = measure(model, tokenizer, folder, held_texts, layer, settings.context_tokens, dead_window=acts)
    write_info(folder, info)
    return read_info(folder)

