"""Generation in rounds (exactly one long call's output) and response clean-up."""

from __future__ import annotations

import copy

import pytest
import torch

from pinhole.generation import clean_response


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [
        ("A fine answer. It ends well.", "A fine answer. It ends well."),
        ("Line one.\nLine one.\nLine two.", "Line one.\nLine two."),  # a small model's loop
        ("The first sentence is complete. The second one was cut off in the mid",
         "The first sentence is complete."),
        ("Thailand has many islands. The most popular ones include:\n\n1.", "Thailand has many islands."),
        ("Breathe steadily. Here's what to do:\n\n1.\n2.\n3.", "Breathe steadily."),
        ("Powers include:\n\n1. **Zoning**: land use.\n2.", "Powers include:\n\n1. **Zoning**: land use."),
        ("Some key components include:\n\n1.", "Some key components include:"),  # nothing before it: kept
    ],
)
def test_clean_response(raw: str, cleaned: str) -> None:
    assert clean_response(raw) == cleaned
    assert clean_response(cleaned) == cleaned  # idempotent: cached answers can be cleaned again


def _with_eos(tokenizer, token_id: int):
    """A copy of `tokenizer` whose end-of-sequence token is `token_id` (so a random model stops somewhere)."""
    changed = copy.deepcopy(tokenizer)
    changed.eos_token = tokenizer.convert_ids_to_tokens(token_id)
    return changed


def test_rounds_continue_exactly_as_one_long_call() -> None:
    from pinhole.generation import chat_texts, generate_counted
    from tests.helpers import tiny

    _, tiny_model, tokenizer = tiny()
    model = copy.deepcopy(tiny_model)
    generator = torch.Generator().manual_seed(0)
    for parameter in model.parameters():  # large random weights: greedy answers that vary with the prompt
        parameter.data = torch.randn(parameter.shape, generator=generator)
    texts = chat_texts(tokenizer, ["Hello there", "What is the capital of France, please", "Hi", "A soup recipe",
                                   "Tell me about Lisbon", "Why is the sky blue?"])
    encoded = tokenizer(texts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
    ids = model.generate(**encoded, max_new_tokens=30, do_sample=False, pad_token_id=0,
                         eos_token_id=None)[:, encoded.input_ids.shape[1] :].tolist()
    # a token that the model emits in some answers but not all, late in the first: rows stop in different rounds
    stop = next(t for t in ids[0][10:] if sum(t in row for row in ids) < len(ids))
    stopping = _with_eos(tokenizer, stop)
    one_call = generate_counted(model, stopping, texts, max_new_tokens=30, batch_size=4, round_tokens=30)
    in_rounds = generate_counted(model, stopping, texts, max_new_tokens=30, batch_size=4, round_tokens=7)
    assert in_rounds == one_call
    counts = one_call[1]
    assert min(counts) < 30 and max(counts) <= 30  # some rows ended early, none ran past the limit


def test_rounds_must_be_positive() -> None:
    from pinhole.generation import generate_counted
    from tests.helpers import tiny

    _, model, tokenizer = tiny()
    with pytest.raises(ValueError, match="round_tokens"):
        generate_counted(model, tokenizer, ["x"], round_tokens=0)


def test_progress_prints_plain_lines_where_stderr_is_a_log(capsys) -> None:
    from pinhole.generation import progress_bar

    with progress_bar() as bar:  # pytest's captured stderr is not a terminal, as a build's log file is not
        task = bar.add_task("Writing answers", total=3)
        for _ in range(3):
            bar.advance(task)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("Writing answers:")]
    assert lines == ["Writing answers: 3/3 (0 s)"]  # within 30 s: only the line that says it finished
    with progress_bar(enabled=False) as bar:
        bar.advance(bar.add_task("Quiet", total=1))
    assert "Quiet" not in capsys.readouterr().err


def _repeats_an_ngram(row: list[int], n: int, start: int = 0) -> bool:
    """Whether a token at `start` or later completes an `n`-gram that occurred earlier in `row`."""
    grams = [tuple(row[i : i + n]) for i in range(len(row) - n + 1)]
    return any(grams[i] in grams[:i] for i in range(max(start - n + 1, 0), len(grams)))


def test_no_repeat_ngram_ends_loops_and_holds_across_rounds() -> None:
    from pinhole.generation import chat_texts, generate_counted
    from tests.helpers import tiny

    _, model, tokenizer = tiny()  # the tiny random model loops under greedy decoding
    texts = chat_texts(tokenizer, ["Hello there", "A soup recipe"])
    encoded = tokenizer(texts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
    width = encoded.input_ids.shape[1]
    settings = {"max_new_tokens": 40, "do_sample": False, "pad_token_id": tokenizer.pad_token_id, "eos_token_id": None}
    looping = model.generate(**encoded, **settings)[:, width:].tolist()
    assert any(_repeats_an_ngram(row, 3) for row in looping)  # without the setting the answers loop
    blocked = model.generate(**encoded, **settings, no_repeat_ngram_size=3)
    for full, mask in zip(blocked.tolist(), encoded.attention_mask.tolist(), strict=True):
        unpadded = full[mask.count(0) :]  # no new token repeats a 3-gram of the prompt or of the answer so far
        assert not _repeats_an_ngram(unpadded, 3, start=len(unpadded) - 40)

    emitted = {t for row in looping + blocked.tolist() for t in row}
    tokenizer_without_eos = _with_eos(tokenizer, next(t for t in range(len(tokenizer)) if t not in emitted))
    one_call = generate_counted(model, tokenizer_without_eos, texts, max_new_tokens=40, no_repeat_ngram_size=3)
    in_rounds = generate_counted(model, tokenizer_without_eos, texts, max_new_tokens=40, no_repeat_ngram_size=3,
                                 round_tokens=9)
    assert in_rounds == one_call  # later rounds still see the earlier rounds' n-grams
    expected = [tokenizer.decode(row, skip_special_tokens=True).strip() for row in blocked[:, width:].tolist()]
    assert one_call[0] == expected
    assert one_call[0] != generate_counted(model, tokenizer_without_eos, texts, max_new_tokens=40)[0]
