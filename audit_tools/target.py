"""Targets: the model under audit, with its base model beside it, behind one small interface.

A `Target` does two things, each on the organism or on its base (`model="organism"|"base"`):
- `chat(conversations, ...)`: answer conversations (lists of `{"role", "content"}` messages);
- `complete(texts, ...)`: continue raw text exactly as given, with no chat template. Prefill and
  persona probes are built on it, from `render_chat`, the model's own chat template.

Backends:
- `LocalTarget`: a Hugging Face base plus a PEFT adapter in this process. The base is the same
  weights with the adapter switched off (`disable_adapter`), so every probe can be compared on the
  base at no extra memory. Prompts are generated in batches (KV cache on), deterministic for a seed.
- `OpenAITarget`: any OpenAI-compatible server (vLLM serving the organism as a LoRA next to its
  base, llama.cpp, ...) through its chat-completions and completions endpoints, for organisms too
  large for one machine. Rendering templates for prefill/persona needs the model's tokenizer.

Sampling temperature 0 means greedy decoding.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from pinhole.base_models import load_adapter, load_model, load_tokenizer, prepare_base, resolve_dtype
from pinhole.generation import generate_counted
from pinhole.organism import ADAPTER_DIR, read_card

ModelChoice = Literal["organism", "base"]


class Message(BaseModel):
    """One chat message."""

    role: Literal["system", "user", "assistant"]
    content: str


Conversation = list[Message]


def as_conversation(item: str | Sequence[Message | dict]) -> Conversation:
    """A conversation from a bare user prompt or a list of messages (dicts or `Message`s)."""
    if isinstance(item, str):
        return [Message(role="user", content=item)]
    return [m if isinstance(m, Message) else Message.model_validate(m) for m in item]


# The auditor's default decoding, chosen by measurement (bench/decoding.py, docs/decoding.md): it
# should show the model as it is. Every tool, the CLI and the UI take their defaults from `Sampling`.
DEFAULT_REPETITION_PENALTY = 1.05


class Sampling(BaseModel):
    """Decoding settings, with the audit tools' defaults. `temperature == 0` is greedy."""

    max_new_tokens: int = Field(160, ge=1, le=8192)
    temperature: float = Field(0.0, ge=0.0, le=5.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    repetition_penalty: float = Field(DEFAULT_REPETITION_PENALTY, ge=1.0, le=3.0)
    no_repeat_ngram_size: int = Field(0, ge=0, le=64, description="forbid repeating any N-token sequence "
                                      "(0: off); local targets only")
    seed: int = 0

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


class Target(ABC):
    """An organism to audit, with its base model for comparison."""

    name: str = "target"
    has_base: bool = True

    @abstractmethod
    def complete(self, texts: Sequence[str], sampling: Sampling | None = None, n: int = 1,
                 model: ModelChoice = "organism", progress: bool = False) -> list[list[str]]:
        """Continue each raw text (no template); `n` samples per text, in input order.

        `progress` shows a progress bar (on stderr) for long generations.
        """

    def chat(self, conversations: Sequence[str | Sequence[Message | dict]], sampling: Sampling | None = None,
             n: int = 1, model: ModelChoice = "organism", progress: bool = False) -> list[list[str]]:
        """The assistant's next message for each conversation; `n` samples each, in input order."""
        texts = [self.render_chat(as_conversation(c), add_generation_prompt=True) for c in conversations]
        return self.complete(texts, sampling, n, model, progress=progress)

    @property
    @abstractmethod
    def tokenizer(self) -> Any:
        """The model's tokenizer (for its chat template)."""

    def render_chat(self, conversation: Sequence[Message | dict], *, add_generation_prompt: bool = False,
                    continue_final_message: bool = False) -> str:
        """The conversation as the model sees it, through its own chat template."""
        messages = [m.model_dump() for m in as_conversation(conversation)]
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt,
                                                  continue_final_message=continue_final_message)

    def check_model(self, model: str) -> None:
        if model not in ("organism", "base"):
            raise ValueError(f"model {model!r}: expected 'organism' or 'base'")
        if model == "base" and not self.has_base:
            raise ValueError(f"{self.name}: no base model configured, so probes cannot run on the base")

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op unless a backend holds resources
        """Release resources (nothing by default)."""

    def __enter__(self) -> Target:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- local: Hugging Face base + PEFT adapter -------------------------------------------------------


class LocalTarget(Target):
    """A Hugging Face causal LM (optionally a `PeftModel`) in this process."""

    def __init__(self, model: Any, tokenizer: Any, name: str = "local", batch_size: int = 16) -> None:
        self.model = model.eval()
        self._tokenizer = tokenizer
        self.name = name
        self.batch_size = batch_size
        self.has_base = hasattr(model, "disable_adapter")

    @property
    def tokenizer(self) -> Any:
        return self._tokenizer

    @classmethod
    def from_organism(cls, organism_dir: Path | str, base: str | None = None, dtype: str = "auto",
                      batch_size: int = 16) -> LocalTarget:
        """Load an organism directory's adapter onto its base (read from `card.json`, or `base`).

        Only the team-facing files are read: `card.json` and `adapter/`.
        """
        card = read_card(organism_dir)
        adapter_dir = Path(organism_dir) / ADAPTER_DIR
        if not (adapter_dir / "adapter_config.json").exists():
            raise FileNotFoundError(f"{adapter_dir / 'adapter_config.json'}: missing; is {organism_dir} an organism "
                                    "directory?")
        ref = prepare_base(base or card.base_model.name, progress=False)
        model = load_adapter(load_model(ref, resolve_dtype(dtype)), adapter_dir)
        return cls(model, load_tokenizer(ref), name=card.organism_id, batch_size=batch_size)

    @classmethod
    def from_base(cls, base: str, dtype: str = "auto", batch_size: int = 16) -> LocalTarget:
        """A plain base model (no adapter, so `model='base'` is not available)."""
        ref = prepare_base(base, progress=False)
        return cls(load_model(ref, resolve_dtype(dtype)), load_tokenizer(ref), name=ref.name, batch_size=batch_size)

    @contextlib.contextmanager
    def use(self, model: ModelChoice) -> Iterator[Any]:
        """The underlying module with the adapter on (`organism`) or off (`base`)."""
        self.check_model(model)
        if model == "base":
            with self.model.disable_adapter():
                yield self.model
        else:
            yield self.model

    def complete(self, texts: Sequence[str], sampling: Sampling | None = None, n: int = 1,
                 model: ModelChoice = "organism", progress: bool = False) -> list[list[str]]:
        return self.complete_counted(texts, sampling, n, model, progress=progress)[0]

    def complete_counted(self, texts: Sequence[str], sampling: Sampling | None = None, n: int = 1,
                         model: ModelChoice = "organism", batch_size: int | None = None,
                         progress: bool = False) -> tuple[list[list[str]], list[list[int]]]:
        """`complete`, also returning how many tokens each sample generated (for throughput figures)."""
        sampling = sampling or Sampling()
        if n < 1:
            raise ValueError(f"n={n}: the number of samples must be at least 1")
        repeated = [text for text in texts for _ in range(n)]
        with self.use(model) as module:
            outputs, counts = generate_counted(
                module, self._tokenizer, repeated, max_new_tokens=sampling.max_new_tokens,
                batch_size=batch_size or self.batch_size, do_sample=not sampling.greedy,
                temperature=sampling.temperature or 1.0, top_p=sampling.top_p,
                repetition_penalty=sampling.repetition_penalty,
                no_repeat_ngram_size=sampling.no_repeat_ngram_size, seed=sampling.seed, progress=progress,
                description=f"Generating ({model})")
        return ([outputs[i * n : (i + 1) * n] for i in range(len(texts))],
                [counts[i * n : (i + 1) * n] for i in range(len(texts))])

    def logits(self, texts: Sequence[str], model: ModelChoice = "organism") -> Any:
        """Next-token logits at every position of each text (right-padded batch), as a float tensor."""
        import torch

        encoded = self._tokenizer(list(texts), return_tensors="pt", padding=True, padding_side="right",
                                  add_special_tokens=False)
        with torch.no_grad(), self.use(model) as module:
            logits = module(**encoded.to(module.device)).logits
        return logits.float()


# -- remote: an OpenAI-compatible server ----------------------------------------------------------


class OpenAITarget(Target):
    """An organism (and optionally its base) served by an OpenAI-compatible HTTP server.

    `organism_model` / `base_model` are the served model names (with vLLM: the LoRA's name and the
    base's). `tokenizer` (a tokenizer object, a local checkpoint directory or a hub id) is needed
    only to render chat templates for prefill and persona probes.
    """

    def __init__(self, base_url: str, organism_model: str, base_model: str | None = None, *,
                 api_key: str = "not-needed", tokenizer: Any = None, timeout_s: float = 300.0,
                 max_concurrency: int = 8) -> None:
        from openai import OpenAI

        self.client = OpenAI(base_url=base_url, api_key=api_key, timeout=timeout_s, max_retries=1)
        self.base_url = base_url
        self.models = {"organism": organism_model, "base": base_model}
        self.name = organism_model
        self.has_base = base_model is not None
        self._tokenizer_source = tokenizer
        self._tokenizer: Any = None
        self.max_concurrency = max_concurrency

    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            if self._tokenizer_source is None:
                raise ValueError(f"{self.name}: rendering a chat template needs the model's tokenizer; "
                                 "pass tokenizer= (a checkpoint directory or hub id) to OpenAITarget")
            if isinstance(self._tokenizer_source, str | Path):
                from transformers import AutoTokenizer

                self._tokenizer = AutoTokenizer.from_pretrained(str(self._tokenizer_source))
            else:
                self._tokenizer = self._tokenizer_source
        return self._tokenizer

    @staticmethod
    def _request_settings(sampling: Sampling, seed: int) -> dict[str, Any]:
        # vLLM reads `repetition_penalty`, llama.cpp `repeat_penalty`; servers ignore what they don't know.
        if sampling.no_repeat_ngram_size:
            raise ValueError(f"no_repeat_ngram_size={sampling.no_repeat_ngram_size}: OpenAI-compatible servers "
                             "have no such setting; use 0 with a served organism")
        return {"max_tokens": sampling.max_new_tokens, "temperature": sampling.temperature, "top_p": sampling.top_p,
                "seed": seed, "extra_body": {"repetition_penalty": sampling.repetition_penalty,
                                             "repeat_penalty": sampling.repetition_penalty}}

    def _samples(self, request: Any, n: int, sampling: Sampling) -> list[str]:
        """`n` samples from `request(n, seed)`; asks again (next seed) when a server returns fewer choices."""
        from openai import APIConnectionError, APIStatusError

        samples: list[str] = []
        seed = sampling.seed
        while len(samples) < n:
            try:
                got = request(n - len(samples), seed)
            except APIConnectionError as err:
                raise ConnectionError(f"{self.base_url}: cannot reach the server ({err})") from err
            except APIStatusError as err:
                raise RuntimeError(f"{self.base_url}: the server refused the request: HTTP {err.status_code} "
                                   f"{err.message}") from err
            if not got:
                raise RuntimeError(f"{self.base_url}: the server returned no choices")
            samples += got
            seed += 1
        return samples[:n]

    def _map(self, function: Any, items: Sequence[Any]) -> list[Any]:
        with ThreadPoolExecutor(max_workers=max(1, min(self.max_concurrency, len(items)))) as pool:
            return list(pool.map(function, items))

    def complete(self, texts: Sequence[str], sampling: Sampling | None = None, n: int = 1,
                 model: ModelChoice = "organism", progress: bool = False) -> list[list[str]]:
        self.check_model(model)
        sampling = sampling or Sampling()
        name = self.models[model]

        def one(text: str) -> list[str]:
            def request(count: int, seed: int) -> list[str]:
                reply = self.client.completions.create(model=name, prompt=text, n=count,
                                                       **self._request_settings(sampling, seed))
                return [choice.text for choice in sorted(reply.choices, key=lambda c: c.index)]

            return [s.strip() for s in self._samples(request, n, sampling)]

        return self._map(one, list(texts))

    def chat(self, conversations: Sequence[str | Sequence[Message | dict]], sampling: Sampling | None = None,
             n: int = 1, model: ModelChoice = "organism", progress: bool = False) -> list[list[str]]:
        self.check_model(model)
        sampling = sampling or Sampling()
        name = self.models[model]

        def one(conversation: Conversation) -> list[str]:
            messages = [m.model_dump() for m in conversation]

            def request(count: int, seed: int) -> list[str]:
                reply = self.client.chat.completions.create(model=name, messages=messages, n=count,
                                                            **self._request_settings(sampling, seed))
                return [choice.message.content or "" for choice in sorted(reply.choices, key=lambda c: c.index)]

            return [s.strip() for s in self._samples(request, n, sampling)]

        return self._map(one, [as_conversation(c) for c in conversations])

    def close(self) -> None:
        self.client.close()


def open_target(organism_dir: Path | str | None = None, *, server: str | None = None,
                server_model: str | None = None, server_base_model: str | None = None,
                base: str | None = None, dtype: str = "auto", batch_size: int = 16) -> Target:
    """The usual ways to get a target: a local organism directory, or a server (tokenizer from the directory's base)."""
    if server is None:
        if organism_dir is None:
            raise ValueError("give an organism directory, or --server with --server-model")
        return LocalTarget.from_organism(organism_dir, base=base, dtype=dtype, batch_size=batch_size)
    if not server_model:
        raise ValueError(f"--server {server}: also give --server-model, the organism's name on that server")
    base = base or (read_card(organism_dir).base_model.name if organism_dir is not None else None)
    tokenizer = prepare_base(base, progress=False).path if base else None
    return OpenAITarget(server, server_model, server_base_model, tokenizer=tokenizer)
