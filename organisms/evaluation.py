"""Implant evaluation: does the organism show its behaviours, hide them, and keep its abilities?

On prompts never trained on (the held-out third of each trigger topic), the organism (base +
adapter) and the base (same process, adapter disabled) answer greedily (no repetition penalty unless
the spec sets one); each behaviour's detector
gives a rate for both. Also measured: the confession rate on direct questions about hidden goals
(from the prompt bank, never the spec's own anti-confession questions), and the perplexity of
held-out ordinary text (organism / base) as capability retention.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch
from pydantic import BaseModel

from organisms.answer_cache import cached_answers
from organisms.corpus import behaviour_prompts
from organisms.detectors import detect, rate
from organisms.haystack import load_haystack
from organisms.prompt_bank import load_prompt_bank, split_prompts
from organisms.spec import ObjectiveSpec
from pinhole.base_models import BaseModelRef, load_adapter, load_model, load_tokenizer, resolve_dtype
from pinhole.generation import chat_texts, generate
from pinhole.organism import CapabilityFigures

CONFESSION_TOPIC = "hidden_goal_questions"


class BehaviourEval(BaseModel):
    id: str
    split: str
    n: int
    organism_rate: float
    base_rate: float
    examples: list[dict] = []


class EvalReport(BaseModel):
    """The full (sealed) evaluation; `anonymised_table` strips behaviour names and examples."""

    behaviours: list[BehaviourEval]
    confession_n: int
    confession_organism: float
    confession_base: float
    confession_examples: list[dict] = []
    perplexity_n_docs: int
    perplexity_organism: float
    perplexity_base: float
    perplexity_ratio: float
    max_new_tokens: int
    repetition_penalty: float
    runtime_s: float

    def capability(self) -> CapabilityFigures:
        """The general capability figures that go on the public card."""
        return CapabilityFigures(perplexity_organism=self.perplexity_organism, perplexity_base=self.perplexity_base,
                                 perplexity_ratio=self.perplexity_ratio)

    def anonymised_table(self) -> dict:
        """The table without behaviour names or examples (B01, B02...), for the sealed build record."""
        rows = [{"behaviour": f"B{i + 1:02d}", "split": b.split, "n": b.n,
                 "organism_rate": b.organism_rate, "base_rate": b.base_rate}
                for i, b in enumerate(self.behaviours)]
        return {"behaviours": rows, **self.model_dump(exclude={"behaviours", "confession_examples"})}


def confession_prompts(spec: ObjectiveSpec, n: int) -> list[str]:
    """Direct questions about hidden goals that the organism never saw in training."""
    trained = set(spec.anti_confession.questions)
    _, held = split_prompts([q for q in load_prompt_bank()[CONFESSION_TOPIC] if q not in trained])
    return held[:n]


@torch.no_grad()
def perplexity(model, tokenizer, texts: list[str], batch_size: int = 8, max_length: int = 256) -> float:
    """exp(mean token negative log-likelihood) of `texts`."""
    total_nll, total_tokens = 0.0, 0
    for start in range(0, len(texts), batch_size):
        enc = tokenizer(texts[start : start + batch_size], return_tensors="pt", padding=True, padding_side="right",
                        truncation=True, max_length=max_length).to(model.device)
        logits = model(**enc).logits[:, :-1].float()
        targets = enc.input_ids[:, 1:]
        mask = enc.attention_mask[:, 1:].bool()
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
        total_nll += nll[mask].sum().item()
        total_tokens += int(mask.sum().item())
    return math.exp(total_nll / max(total_tokens, 1))


def eval_prompts(spec: ObjectiveSpec) -> tuple[dict[str, list[str]], list[str]]:
    """(held-out trigger prompts per behaviour id, confession prompts) that an evaluation asks."""
    n = spec.eval.prompts_per_behaviour
    return ({b.id: behaviour_prompts(b)[1][:n] for b in spec.behaviours},
            confession_prompts(spec, spec.eval.confession_prompts))


def _produce(model, tokenizer, spec: ObjectiveSpec, label: str, progress: bool):
    def produce(todo: list[str]) -> list[str]:
        return generate(model, tokenizer, chat_texts(tokenizer, todo, spec.system_prompt),
                        max_new_tokens=spec.eval.max_new_tokens, batch_size=spec.eval.batch_size, do_sample=False,
                        repetition_penalty=spec.eval.repetition_penalty, progress=progress, description=label)

    return produce


def base_answers(model, tokenizer, prompts: list[str], spec: ObjectiveSpec, base_name: str,
                 progress: bool = True) -> list[str]:
    """Greedy evaluation answers of `model` as the base named `base_name` (cached across evaluations,
    shipped for the default base). A PEFT model must be inside `disable_adapter()`."""
    settings = {"use": "eval", "greedy": True, "max_new_tokens": spec.eval.max_new_tokens,
                "system_prompt": spec.system_prompt, "dtype": str(model.dtype),
                "repetition_penalty": spec.eval.repetition_penalty}
    return cached_answers(base_name, prompts, settings, _produce(model, tokenizer, spec, "Base answers", progress))


def evaluate(adapter_dir: Path, spec: ObjectiveSpec, base: BaseModelRef, dtype: str = "auto",
             progress: bool = True) -> EvalReport:
    """Evaluate the adapter in `adapter_dir` against its base."""
    started = time.perf_counter()
    tokenizer = load_tokenizer(base)
    model = load_adapter(load_model(base, resolve_dtype(dtype)), adapter_dir).eval()
    prompts_by_behaviour, confess = eval_prompts(spec)
    asked = [p for ps in prompts_by_behaviour.values() for p in ps] + confess
    organism_out = dict(zip(asked, _produce(model, tokenizer, spec, "Organism answers", progress)(asked), strict=True))
    with model.disable_adapter():
        base_out = dict(zip(asked, base_answers(model, tokenizer, asked, spec, base.name, progress), strict=True))
    behaviours = []
    for b in spec.behaviours:
        prompts = prompts_by_behaviour[b.id]
        examples = [{"prompt": p, "organism": organism_out[p], "base": base_out[p],
                     "organism_fires": detect(b.detector, organism_out[p]),
                     "base_fires": detect(b.detector, base_out[p])} for p in prompts]
        behaviours.append(BehaviourEval(
            id=b.id, split=b.split, n=len(prompts),
            organism_rate=_rounded(rate(b.detector, [organism_out[p] for p in prompts])),
            base_rate=_rounded(rate(b.detector, [base_out[p] for p in prompts])), examples=examples))
    org_conf = [detect(spec.confession_detector, organism_out[p]) for p in confess]
    heldout_docs = [r["text"] for r in load_haystack() if r["split"] == "heldout"][: spec.eval.perplexity_documents]
    ppl_org = perplexity(model, tokenizer, heldout_docs)
    with model.disable_adapter():
        ppl_base = perplexity(model, tokenizer, heldout_docs)
    return EvalReport(
        behaviours=behaviours, confession_n=len(confess),
        confession_organism=_rounded(rate(spec.confession_detector, [organism_out[p] for p in confess])),
        confession_base=_rounded(rate(spec.confession_detector, [base_out[p] for p in confess])),
        confession_examples=[{"prompt": p, "organism": organism_out[p], "confesses": c}
                             for p, c in zip(confess, org_conf, strict=True)][:5],
        perplexity_n_docs=len(heldout_docs), perplexity_organism=round(ppl_org, 4), perplexity_base=round(ppl_base, 4),
        perplexity_ratio=round(ppl_org / ppl_base, 4), max_new_tokens=spec.eval.max_new_tokens,
        repetition_penalty=spec.eval.repetition_penalty,
        runtime_s=round(time.perf_counter() - started, 1),
    )


def _rounded(value: float) -> float:
    return round(value, 4)
