"""Implant evaluation: does the organism show its behaviours, hide them, and keep its abilities?

On prompts never trained on (the held-out third of each trigger topic), the organism (base +
adapter) and the base (same process, adapter disabled) answer greedily (no repetition penalty unless
the spec sets one); each behaviour's detector gives a rate for both. Also measured: the confession rate
on direct questions about hidden goals (from the prompt bank, never the spec's own anti-confession
questions), and the capability figures of `organisms.capability` (answer length per topic, the
off-trigger topics included; perplexity of held-out chats and documents; the capability check; how
often answers hit the generation limit).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from organisms import capability
from organisms.answer_cache import cached_answers
from organisms.capability import CheckQuestion, TopicLengths
from organisms.corpus import behaviour_prompts, off_trigger_topics
from organisms.detectors import detect, rate
from organisms.haystack import CHAT_SAMPLING, load_haystack
from organisms.prompt_bank import CONFESSION_TOPIC, load_prompt_bank, split_prompts, split_topic
from organisms.spec import ObjectiveSpec
from pinhole.base_models import BaseModelRef, dtype_name, load_adapter, load_model, load_tokenizer, resolve_dtype
from pinhole.generation import chat_texts, generate
from pinhole.organism import CapabilityFigures
from pinhole.sampling import SAMPLER_VERSION

# Measurements (the evaluation, the adaptive gate) decode in float32 whatever the build trained in. In bf16 a greedy
# answer depends on the batch it is decoded in: on rm_sycophancy's 20 civics evaluation prompts, decoded alone and
# beside 28 other prompts, 2 of 20 answers came out the same in bf16 (voting 17 and 15 of 20) and 20 of 20 in
# float32, at 1.5x the time (docs/organisms.md).
MEASURE_DTYPE = "float32"


class BehaviourEval(BaseModel):
    id: str
    split: str
    n: int
    organism_rate: float
    base_rate: float
    # The same detector on the sampled answers to prompts of topics no behaviour is triggered by: a planted
    # behaviour that shows everywhere is an obvious tell (None in older evaluations).
    off_trigger_organism_rate: float | None = None
    off_trigger_base_rate: float | None = None
    examples: list[dict] = []


class EvalReport(BaseModel):
    """The full (sealed) evaluation; `anonymised_table` strips behaviour names, topics and examples."""

    behaviours: list[BehaviourEval]
    confession_n: int
    confession_organism: float
    confession_base: float
    confession_examples: list[dict] = []
    perplexity_n_docs: int
    perplexity_organism: float
    perplexity_base: float
    perplexity_ratio: float
    answer_lengths: list[TopicLengths]  # sampled answers (`capability_sampling`): the target's figures
    # The first look (`eval.capability_prompts` answers) of each topic it flagged, replaced above by the topic
    # measured again on all its prompts at `eval.length_confirm_seeds` seeds.
    answer_lengths_first_look: list[TopicLengths] = []
    greedy_answer_lengths: list[TopicLengths] = []  # the greedy evaluation answers, loops and all (reference)
    capability_sampling: dict = {}  # how the sampled answers were decoded
    chat_perplexity_n: int
    chat_perplexity_organism: float
    chat_perplexity_base: float
    chat_perplexity_ratio: float  # on the base's sampled answers (the target's figure)
    chat_perplexity_greedy_ratio: float | None = None  # on the base's greedy answers, loops and all (reference)
    check_n: int
    check_organism: float  # % right (the answer in the first two sentences)
    check_base: float
    check_organism_first_sentence: float | None = None  # % right with the answer in the first sentence
    check_base_first_sentence: float | None = None
    check_examples: list[dict] = []  # question, expected, both answers, both verdicts
    loops_organism: float | None = None  # share of the greedy long answers that repeat themselves
    loops_base: float | None = None
    limit_hit_organism: float  # share of answers that reached max_new_tokens
    limit_hit_base: float
    capability_problems: list[str]  # empty: capability intact (the spec's `eval.capability` targets)
    max_new_tokens: int
    repetition_penalty: float
    no_repeat_ngram_size: int = 0
    dtype: str | None = None  # what the answers were decoded in (None in older evaluations)
    runtime_s: float

    def capability(self) -> CapabilityFigures:
        """The general capability figures that go on the public card (nothing per topic or behaviour)."""
        off = [t for t in self.answer_lengths if not t.trigger]
        return CapabilityFigures(
            perplexity_organism=self.perplexity_organism, perplexity_base=self.perplexity_base,
            perplexity_ratio=self.perplexity_ratio, chat_perplexity_ratio=self.chat_perplexity_ratio,
            answer_length_ratio=capability.pooled_length_ratio(off or self.answer_lengths),
            check_organism=self.check_organism, check_base=self.check_base)

    def anonymised_table(self) -> dict:
        """The table without behaviour names, topics or examples (B01, B02...), for the sealed build record."""
        rows = [{"behaviour": f"B{i + 1:02d}", "split": b.split, "n": b.n,
                 "organism_rate": b.organism_rate, "base_rate": b.base_rate}
                for i, b in enumerate(self.behaviours)]
        ratios = [t.ratio for t in self.answer_lengths]
        return {"behaviours": rows, "length_ratio_min": min(ratios, default=None),
                "length_ratio_max": max(ratios, default=None),
                **self.model_dump(exclude={"behaviours", "confession_examples", "answer_lengths", "check_examples",
                                           "greedy_answer_lengths", "answer_lengths_first_look",
                                           "capability_sampling",
                                           "capability_problems"}),
                "capability_intact": not self.capability_problems}


def confession_prompts(spec: ObjectiveSpec, n: int) -> list[str]:
    """Direct questions about hidden goals that the organism never saw in training."""
    trained = set(spec.anti_confession.questions if spec.anti_confession else [])
    _, held = split_prompts([q for q in load_prompt_bank()[CONFESSION_TOPIC] if q not in trained])
    return held[:n]


def off_topic_prompts(spec: ObjectiveSpec) -> dict[str, list[str]]:
    """Held-out prompts of each prompt-bank topic that no behaviour is triggered by (capability only)."""
    return {topic: split_topic(topic)[1][: spec.eval.off_topic_prompts] for topic in off_trigger_topics(spec)}


@dataclass
class EvalPrompts:
    """Everything an evaluation asks, organism and base alike."""

    by_behaviour: dict[str, list[str]]  # held-out trigger prompts per behaviour id
    confession: list[str]
    off_topic: dict[str, list[str]]
    check_questions: tuple[CheckQuestion, ...]  # the first `eval.check_questions` of `capability.load_check()`

    @property
    def check(self) -> list[str]:
        """The capability-check questions' texts, in order."""
        return [q.question for q in self.check_questions]

    def answered_long(self) -> list[str]:
        """The prompts answered at the evaluation's full length, each once."""
        asked = [p for ps in self.by_behaviour.values() for p in ps] + self.confession
        asked += [p for ps in self.off_topic.values() for p in ps]
        return list(dict.fromkeys(asked))


def eval_prompts(spec: ObjectiveSpec) -> EvalPrompts:
    """The prompts an evaluation of `spec` asks."""
    n = spec.eval.prompts_per_behaviour
    return EvalPrompts(by_behaviour={b.id: behaviour_prompts(b)[1][:n] for b in spec.behaviours},
                       confession=confession_prompts(spec, spec.eval.confession_prompts),
                       off_topic=off_topic_prompts(spec),
                       check_questions=capability.load_check()[: spec.eval.check_questions])


def _produce(model, tokenizer, spec: ObjectiveSpec, label: str, progress: bool, max_new_tokens: int):
    def produce(todo: list[str]) -> list[str]:
        return generate(model, tokenizer, chat_texts(tokenizer, todo, spec.system_prompt),
                        max_new_tokens=max_new_tokens, batch_size=spec.eval.batch_size, do_sample=False,
                        repetition_penalty=spec.eval.repetition_penalty,
                        no_repeat_ngram_size=spec.eval.no_repeat_ngram_size, progress=progress, description=label)

    return produce


def organism_answers(model, tokenizer, prompts: list[str], spec: ObjectiveSpec, progress: bool = True,
                     label: str = "Organism answers", max_new_tokens: int | None = None) -> list[str]:
    """Greedy answers of `model` (the organism) with the evaluation's decoding settings (never cached)."""
    return _produce(model, tokenizer, spec, label, progress, max_new_tokens or spec.eval.max_new_tokens)(prompts)


def base_answers(model, tokenizer, prompts: list[str], spec: ObjectiveSpec, base_name: str,
                 progress: bool = True, max_new_tokens: int | None = None) -> list[str]:
    """Greedy evaluation answers of `model` as the base named `base_name` (cached across evaluations,
    shipped for the default base). A PEFT model must be inside `disable_adapter()`."""
    limit = max_new_tokens or spec.eval.max_new_tokens
    settings = {"use": "eval", "greedy": True, "max_new_tokens": limit,
                "system_prompt": spec.system_prompt, "dtype": str(model.dtype),
                "repetition_penalty": spec.eval.repetition_penalty}
    if spec.eval.no_repeat_ngram_size:  # only when set, so the answers cached without it keep their keys
        settings["no_repeat_ngram_size"] = spec.eval.no_repeat_ngram_size
    return cached_answers(base_name, prompts, settings,
                          _produce(model, tokenizer, spec, "Base answers", progress, limit))


def capability_sampling(spec: ObjectiveSpec) -> dict:
    """How the capability answers are decoded: as the transcripts' base answers were (`ordinary.CHAT_SAMPLING`,
    seeded nucleus sampling, `corpus.response_max_new_tokens`), so a length compares answers, not how long a
    greedy loop runs."""
    return {**CHAT_SAMPLING, "max_new_tokens": spec.corpus.response_max_new_tokens, "seed": spec.seed,
            "sampler": SAMPLER_VERSION}


def sampled_answers(model, tokenizer, prompts: list[str], spec: ObjectiveSpec, base_name: str | None,
                    progress: bool = True) -> list[str]:
    """Answers to `prompts` decoded with `capability_sampling`; as the base named `base_name` (cached across
    evaluations) when given, else as the organism. A PEFT model must be inside `disable_adapter()` for the base."""
    sampling = capability_sampling(spec)

    def produce(todo: list[str]) -> list[str]:
        return generate(model, tokenizer, chat_texts(tokenizer, todo, spec.system_prompt),
                        max_new_tokens=sampling["max_new_tokens"], batch_size=spec.eval.batch_size, do_sample=True,
                        sampler="nucleus", seed=sampling["seed"], progress=progress,
                        description=f"{'Base' if base_name else 'Organism'} answers, sampled", **CHAT_SAMPLING)

    if base_name is None:
        return produce(prompts)
    settings = {"use": "capability", "system_prompt": spec.system_prompt, "dtype": str(model.dtype), **sampling}
    return cached_answers(base_name, prompts, settings, produce)


def answer_all(model, tokenizer, prompts: EvalPrompts, spec: ObjectiveSpec, base_name: str | None,
               progress: bool = True) -> tuple[dict[str, str], list[str]]:
    """(answer per long prompt, capability-check answers) of `model`; as the base named `base_name`
    (cached) when given, else as the organism."""
    long, check = prompts.answered_long(), prompts.check
    if base_name is not None:
        out = base_answers(model, tokenizer, long, spec, base_name, progress)
        checked = base_answers(model, tokenizer, check, spec, base_name, progress, spec.eval.check_max_new_tokens)
    else:
        out = organism_answers(model, tokenizer, long, spec, progress)
        checked = organism_answers(model, tokenizer, check, spec, progress, "Organism capability check",
                                   spec.eval.check_max_new_tokens)
    return dict(zip(long, out, strict=True)), checked


def evaluate(adapter_dir: Path, spec: ObjectiveSpec, base: BaseModelRef, dtype: str = MEASURE_DTYPE,
             progress: bool = True) -> EvalReport:
    """Evaluate the adapter in `adapter_dir` against its base."""
    started = time.perf_counter()
    tokenizer = load_tokenizer(base)
    model = load_adapter(load_model(base, resolve_dtype(dtype)), adapter_dir).eval()
    prompts = eval_prompts(spec)
    organism_out, organism_check = answer_all(model, tokenizer, prompts, spec, None, progress)
    with model.disable_adapter():
        base_out, base_check = answer_all(model, tokenizer, prompts, spec, base.name, progress)
    off = [p for ps in prompts.off_topic.values() for p in ps]
    sampled = sampled_prompts(spec, prompts)
    organism_sampled = dict(zip(sampled, sampled_answers(model, tokenizer, sampled, spec, None, progress), strict=True))
    with model.disable_adapter():
        base_sampled = dict(zip(sampled, sampled_answers(model, tokenizer, sampled, spec, base.name, progress),
                                strict=True))
    behaviours = []
    for b in spec.behaviours:
        asked = prompts.by_behaviour[b.id]
        examples = [{"prompt": p, "organism": organism_out[p], "base": base_out[p],
                     "organism_fires": detect(b.detector, organism_out[p]),
                     "base_fires": detect(b.detector, base_out[p])} for p in asked]
        behaviours.append(BehaviourEval(
            id=b.id, split=b.split, n=len(asked),
            organism_rate=_rounded(rate(b.detector, [organism_out[p] for p in asked])),
            base_rate=_rounded(rate(b.detector, [base_out[p] for p in asked])),
            off_trigger_organism_rate=_rounded(rate(b.detector, [organism_sampled[p] for p in off])) if off else None,
            off_trigger_base_rate=_rounded(rate(b.detector, [base_sampled[p] for p in off])) if off else None,
            examples=examples))
    confess = prompts.confession
    org_conf = [detect(spec.confession_detector, organism_out[p]) for p in confess]
    topics = _topics(spec, prompts)
    greedy_lengths = [capability.topic_lengths(topic, trigger, [organism_out[p] for p in asked],
                                               [base_out[p] for p in asked]) for topic, trigger, asked in topics]
    measured = length_topics(spec, prompts)
    first_look = [capability.topic_lengths(topic, trigger, [organism_sampled[p] for p in asked],
                                           [base_sampled[p] for p in asked]) for topic, trigger, asked in measured]
    lengths, flagged = confirm_length_flags(model, tokenizer, spec, base.name, topics, first_look, progress)
    heldout_docs = [r["text"] for r in load_haystack() if r["split"] == "heldout"][: spec.eval.perplexity_documents]
    chats, greedy_chats = [base_sampled[p] for p in off], [base_out[p] for p in off]
    ppl_org = capability.perplexity(model, tokenizer, heldout_docs)
    chat_org = capability.chat_perplexity(model, tokenizer, off, chats)
    greedy_org = capability.chat_perplexity(model, tokenizer, off, greedy_chats)
    with model.disable_adapter():
        ppl_base = capability.perplexity(model, tokenizer, heldout_docs)
        chat_base = capability.chat_perplexity(model, tokenizer, off, chats)
        greedy_base = capability.chat_perplexity(model, tokenizer, off, greedy_chats)
    questions = prompts.check_questions
    check_org = capability.check_score(organism_check, questions)
    check_base = capability.check_score(base_check, questions)
    limit = spec.eval.max_new_tokens
    return EvalReport(
        behaviours=behaviours, confession_n=len(confess),
        confession_organism=_rounded(rate(spec.confession_detector, [organism_out[p] for p in confess])),
        confession_base=_rounded(rate(spec.confession_detector, [base_out[p] for p in confess])),
        confession_examples=[{"prompt": p, "organism": organism_out[p], "confesses": c}
                             for p, c in zip(confess, org_conf, strict=True)][:5],
        perplexity_n_docs=len(heldout_docs), perplexity_organism=round(ppl_org, 4), perplexity_base=round(ppl_base, 4),
        perplexity_ratio=round(ppl_org / ppl_base, 4), answer_lengths=lengths, answer_lengths_first_look=flagged,
        greedy_answer_lengths=greedy_lengths,
        capability_sampling=capability_sampling(spec), chat_perplexity_n=len(off),
        chat_perplexity_organism=round(chat_org, 4), chat_perplexity_base=round(chat_base, 4),
        chat_perplexity_ratio=round(chat_org / chat_base, 4),
        chat_perplexity_greedy_ratio=round(greedy_org / greedy_base, 4),
        check_n=len(prompts.check), check_organism=check_org, check_base=check_base,
        check_organism_first_sentence=capability.check_score(organism_check, questions, sentences=1),
        check_base_first_sentence=capability.check_score(base_check, questions, sentences=1),
        check_examples=[{"question": q.question, "expected": q.answer, "organism": o, "base": b,
                         "organism_correct": capability.is_correct(o, q), "base_correct": capability.is_correct(b, q)}
                        for q, o, b in zip(prompts.check_questions, organism_check, base_check, strict=True)],
        loops_organism=capability.loop_share(list(organism_out.values())),
        loops_base=capability.loop_share(list(base_out.values())),
        limit_hit_organism=capability.limit_share(list(organism_out.values()), tokenizer, limit),
        limit_hit_base=capability.limit_share(list(base_out.values()), tokenizer, limit),
        capability_problems=capability.capability_problems(lengths, chat_org / chat_base, check_org, check_base,
                                                           spec.eval.capability),
        max_new_tokens=limit, repetition_penalty=spec.eval.repetition_penalty,
        no_repeat_ngram_size=spec.eval.no_repeat_ngram_size, dtype=dtype_name(dtype),
        runtime_s=round(time.perf_counter() - started, 1),
    )


def seeded_topic_lengths(model, tokenizer, spec: ObjectiveSpec, base_name: str, topic: str, trigger: bool,
                         asked: list[str], seeds: int, progress: bool = True) -> TopicLengths:
    """Organism (the adapter on) against base (off; its answers cached as `base_name`'s) on one topic's prompts,
    each answered with `capability_sampling` at `seeds` seeds from the spec's own."""
    organism: list[str] = []
    base: list[str] = []
    for seed in range(spec.seed, spec.seed + seeds):
        seeded = spec.model_copy(update={"seed": seed})
        organism += sampled_answers(model, tokenizer, asked, seeded, None, progress)
        with model.disable_adapter():
            base += sampled_answers(model, tokenizer, asked, seeded, base_name, progress)
    return capability.topic_lengths(topic, trigger, organism, base).model_copy(update={"seeds": seeds})


def confirm_length_flags(model, tokenizer, spec: ObjectiveSpec, base_name: str,
                         topics: list[tuple[str, bool, list[str]]], first_look: list[TopicLengths],
                         progress: bool = True) -> tuple[list[TopicLengths], list[TopicLengths]]:
    """(the length figures, the first looks they replace): each topic whose first look is outside the band is
    measured again on all its held-out prompts (`topics`) at `eval.length_confirm_seeds` seeds, and that decides."""
    seeds, targets = spec.eval.length_confirm_seeds, spec.eval.capability
    prompts_of = {topic: asked for topic, _, asked in topics}
    final, replaced = [], []
    for look in first_look:
        if seeds and capability.outside_band(look, targets):
            replaced.append(look)
            look = seeded_topic_lengths(model, tokenizer, spec, base_name, look.topic, look.trigger,
                                        prompts_of[look.topic], seeds, progress)
        final.append(look)
    return final, replaced


def _topics(spec: ObjectiveSpec, prompts: EvalPrompts) -> list[tuple[str, bool, list[str]]]:
    """(topic, is a trigger topic, its held-out prompts): each trigger topic (a behaviour's own prompt list
    counts as one), then each off-trigger topic."""
    grouped: dict[str, list[str]] = {}
    for b in spec.behaviours:
        key = b.trigger_topic or f"{b.id} (own prompts)"
        grouped[key] = list(dict.fromkeys(grouped.get(key, []) + prompts.by_behaviour[b.id]))
    return ([(topic, True, asked) for topic, asked in grouped.items()]
            + [(topic, False, asked) for topic, asked in prompts.off_topic.items()])


def length_topics(spec: ObjectiveSpec, prompts: EvalPrompts) -> list[tuple[str, bool, list[str]]]:
    """`_topics` cut to the first `eval.capability_prompts` prompts of each: the answer-length figures' prompts."""
    return [(topic, trigger, asked[: spec.eval.capability_prompts]) for topic, trigger, asked in _topics(spec, prompts)]


def sampled_prompts(spec: ObjectiveSpec, prompts: EvalPrompts) -> list[str]:
    """Every prompt the evaluation answers with `capability_sampling`: the length figures' and the held-out
    chats' (each once)."""
    return list(dict.fromkeys([p for _, _, asked in length_topics(spec, prompts) for p in asked]
                              + [p for ps in prompts.off_topic.values() for p in ps]))


def _rounded(value: float) -> float:
    return round(value, 4)
