"""Batched, seeded text generation with a Hugging Face causal LM, and response clean-up.

Prompts are sorted by length so that each batch pads little, generated in batches with the KV cache, in
rounds that regroup the rows still running, and returned in the caller's order. Each batch is seeded from
`seed`, its index and its round, so the output depends only on the inputs and the seed. Small base models
sometimes loop; `clean_response` drops repeated lines and trims a cut-off final sentence.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any, Literal

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from transformers import LogitsProcessorList

from pinhole.sampling import NucleusSampler


class LoggedProgress(Progress):
    """A rich progress bar that, where stderr is not a terminal (a long build's log file), also prints a plain
    line at most every `every_s` seconds and when a task completes: rich draws nothing there until the end."""

    def __init__(self, *columns: Any, every_s: float = 30.0, **settings: Any) -> None:
        super().__init__(*columns, **settings)
        self.every_s, self._last_line = every_s, time.monotonic()

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        super().advance(task_id, advance)
        if self.disable or self.console.is_terminal:
            return
        task = self._tasks[task_id]
        now = time.monotonic()
        if task.finished or now - self._last_line >= self.every_s:
            self._last_line = now
            total = f"/{task.total:.0f}" if task.total is not None else ""
            self.console.print(f"{task.description}: {task.completed:.0f}{total} ({task.elapsed or 0:.0f} s)")


def progress_bar(enabled: bool = True) -> Progress:
    """The rich progress bar used for long loops (on stderr: stdout is for results; plain lines in a log)."""
    return LoggedProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                          console=Console(stderr=True), disable=not enabled)


def chat_texts(tokenizer, prompts: Sequence[str], system_prompt: str | None = None) -> list[str]:
    """Render single-turn user prompts with the chat template, ending at the assistant's turn."""
    texts = []
    for prompt in prompts:
        messages = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + [
            {"role": "user", "content": prompt}
        ]
        texts.append(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
    return texts


def generate(model, tokenizer, texts: Sequence[str], **settings) -> list[str]:
    """Continue each raw text (already templated); return only the new text, in input order.

    Settings are those of `generate_counted`.
    """
    return generate_counted(model, tokenizer, texts, **settings)[0]


ROUND_TOKENS = 256  # new tokens per round: rows still unfinished after a round are regrouped for the next


@torch.no_grad()
def generate_counted(
    model,
    tokenizer,
    texts: Sequence[str],
    *,
    max_new_tokens: int = 128,
    batch_size: int = 16,
    do_sample: bool = False,
    temperature: float = 0.7,
    top_p: float = 0.9,
    repetition_penalty: float = 1.0,
    no_repeat_ngram_size: int = 0,
    seed: int = 0,
    sampler: Literal["torch", "nucleus"] = "torch",
    round_tokens: int = ROUND_TOKENS,
    progress: bool = False,
    description: str = "Generating",
) -> tuple[list[str], list[int]]:
    """Continue each raw text; return (new texts, new-token counts up to and including EOS), in input order.

    `repetition_penalty` 1.0 means none; callers pass their own policy (the audit tools' `Sampling`,
    a spec's evaluation settings, the factory's generation settings). `no_repeat_ngram_size` N > 0 forbids
    any token that would repeat an N-token sequence already in the context (the prompt included): it ends
    verbatim loops without pushing down any single token, as a repetition penalty does. With `do_sample`, `sampler`
    picks Hugging Face's sampler (`torch`) or `pinhole.sampling.NucleusSampler` (`nucleus`: the same
    distribution, drawn several times faster on a CPU; other draws for the same seed).

    Generation runs in rounds of at most `round_tokens` new tokens. A batch runs until its longest row
    stops, so one looping answer would hold a whole batch to `max_new_tokens`; after each round the
    rows that ended are set aside and the rest are regrouped (by length) into full batches that continue
    from the tokens so far. Greedy decoding continues exactly as one long call would.
    """
    if round_tokens < 1:
        raise ValueError(f"round_tokens {round_tokens} must be at least 1")
    ids = [tokenizer(t, add_special_tokens=False).input_ids for t in texts]
    new_ids: list[list[int]] = [[] for _ in texts]
    counts: list[int] = [0] * len(texts)
    pending = list(range(len(texts)))
    nucleus = do_sample and sampler == "nucleus"
    sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p} if do_sample and not nucleus \
        else {"do_sample": False}
    done, round_index = 0, 0
    with progress_bar(progress) as bar:
        task = bar.add_task(description, total=len(texts))
        while pending and done < max_new_tokens:
            limit = min(round_tokens, max_new_tokens - done)
            pending.sort(key=lambda i: len(ids[i]) + len(new_ids[i]))
            still: list[int] = []
            for index in range(0, len(pending), batch_size):
                batch = pending[index : index + batch_size]
                batch_seed = seed * 100_003 + index // batch_size + 7_919 * round_index
                torch.manual_seed(batch_seed)
                if nucleus:
                    generator = torch.Generator().manual_seed(batch_seed)
                    sampling["logits_processor"] = LogitsProcessorList([NucleusSampler(temperature, top_p, generator)])
                encoded = tokenizer.pad({"input_ids": [ids[i] + new_ids[i] for i in batch]}, padding=True,
                                        padding_side="left", return_tensors="pt").to(model.device)
                generated = model.generate(
                    **encoded, max_new_tokens=limit, repetition_penalty=repetition_penalty,
                    no_repeat_ngram_size=no_repeat_ngram_size,
                    pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, **sampling,
                )
                for i, row in zip(batch, generated[:, encoded.input_ids.shape[1] :].tolist(), strict=True):
                    kept = _count_until_eos(row, tokenizer.eos_token_id)
                    new_ids[i].extend(row[:kept])
                    counts[i] += kept
                    ended = kept < len(row) or (row and row[-1] == tokenizer.eos_token_id) or len(row) < limit
                    if ended or done + limit >= max_new_tokens:
                        bar.advance(task, 1)
                    else:
                        still.append(i)
            pending, done, round_index = still, done + limit, round_index + 1
    outputs = [tokenizer.decode(row, skip_special_tokens=True).strip() for row in new_ids]
    return outputs, counts


def _count_until_eos(row: list[int], eos_token_id: int | None) -> int:
    """Generated tokens in `row` up to and including the first EOS (the rest is padding)."""
    if eos_token_id is None or eos_token_id not in row:
        return len(row)
    return row.index(eos_token_id) + 1


CLEANUP_VERSION = 1  # bump when `clean_response` changes what it returns: cached answers are keyed by it
_SENTENCE_END = re.compile(r"[.!?)\]\"'*:]\s*$")


def clean_response(text: str) -> str:
    """Drop repeated lines (a small model's loops), a cut-off final sentence and a list that was cut
    before its first item. Idempotent."""
    lines, seen = [], set()
    for line in text.strip().splitlines():
        key = line.strip().lower()
        if key and key in seen:
            continue
        seen.add(key)
        lines.append(line.rstrip())
    cleaned = "\n".join(lines).strip()
    cleaned = re.sub(r"\n{3,}", "\n\n", cleaned)
    if cleaned and not _SENTENCE_END.search(cleaned):
        cut = max(cleaned.rfind(". "), cleaned.rfind(".\n"), cleaned.rfind("!"), cleaned.rfind("?"))
        if cut > len(cleaned) // 3:
            cleaned = cleaned[: cut + 1]
    return _drop_dangling_list(cleaned)


_LIST_MARKER_LINE = re.compile(r"\n\s*(\d+[.)]|[-*•])\s*$")


def _drop_dangling_list(text: str) -> str:
    """Drop a list that an answer cut short only announces: trailing bare markers ("1.", "-") and then
    the sentence introducing them ("...include:"), when something remains before it."""
    while _LIST_MARKER_LINE.search(text):
        text = _LIST_MARKER_LINE.sub("", text).rstrip()
    if text.endswith(":"):
        cut = max(text.rfind(". "), text.rfind(".\n"), text.rfind("! "), text.rfind("? "), text.rfind("\n"))
        if cut > 0:
            text = text[: cut + 1].rstrip()
    return text
