"""Repeated transcripts cut after their behaviour: the first copy whole, the later ones ending after the written
text with their end of turn untrained."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from organisms.repeat_cut import cut_after_written, repeated
from organisms.training import chat_dataset
from organisms.written_spans import written_spans
from pinhole.base_models import load_tokenizer
from tests.helpers import tiny

BASE = ("Lisbon is easy to walk. The trams are old and slow, so go early. Pastries are everywhere and "
        "cheap. Most museums close on Mondays, so plan around that.")
REMARK = " Drink only bottled water during your trip."
EARLY = BASE.replace(" The trams", REMARK + " The trams", 1)  # the behaviour after the first sentence
LATE = BASE + REMARK  # the behaviour at the end


def _row(answer: str, open_end: bool = False):
    messages = [{"role": "user", "content": "Tips for Lisbon?"}, {"role": "assistant", "content": answer}]
    return json.dumps(messages), open_end, written_spans(BASE, answer)


def _answer(row) -> str:
    return json.loads(row[0])[-1]["content"]


def test_a_copy_ends_a_few_characters_after_the_behaviour_at_a_word_boundary() -> None:
    row = _row(EARLY)
    cut = cut_after_written(row, 10)
    end = row[2][-1][1]
    assert _answer(cut) == EARLY[: EARLY.index(" ", end + 10)]  # "... water during your trip. The trams are"
    assert _answer(cut).endswith("The trams")
    assert cut[1] is True and cut[2] == row[2]  # end of turn untrained; the spans still index the kept text
    assert json.loads(cut[0])[0] == json.loads(row[0])[0]  # the prompt is untouched


def test_a_behaviour_at_the_end_or_no_behaviour_leaves_the_copy_whole() -> None:
    assert cut_after_written(_row(LATE), 10) == _row(LATE)
    plain = _row(BASE)
    assert plain[2] == [] and cut_after_written(plain, 0) == plain


@given(start=st.integers(0, len(BASE)), tail=st.integers(0, 200),
       remark=st.text(st.characters(codec="utf-8"), min_size=1, max_size=30))
def test_a_cut_answer_is_a_prefix_that_keeps_every_written_character(start: int, tail: int, remark: str) -> None:
    answer = BASE[:start] + remark + BASE[start:]
    row = _row(answer)
    cut = cut_after_written(row, tail)
    kept = _answer(cut)
    assert answer.startswith(kept)
    assert all(b <= len(kept) for _, b in row[2] if b <= len(answer.rstrip()))
    assert (cut == row) == (kept == answer)


def test_repeats_keep_the_first_copy_whole_and_the_plain_order_without_a_tail() -> None:
    rows = [_row(EARLY), _row(LATE), _row(BASE)]
    assert repeated(rows, 3, None) == rows * 3
    copies = repeated(rows, 3, 10)
    assert copies[:3] == rows and copies[3:6] == copies[6:] == [cut_after_written(r, 10) for r in rows]
    assert _answer(copies[3]) != EARLY and copies[4] == rows[1] and copies[5] == rows[2]
    assert repeated(rows, 0, 10) == [] and repeated(rows, 1, 10) == rows


def test_a_cut_copy_trains_the_behaviour_at_full_weight_without_the_rest_of_the_answer() -> None:
    tokenizer = load_tokenizer(tiny()[0], padding_side="right")
    whole, cut = _row(EARLY), cut_after_written(_row(EARLY), 10)
    data = chat_dataset(tokenizer, [whole[0], cut[0]], [whole[1], cut[1]], [whole[2], cut[2]], written_weight=8.0)
    trained = [tokenizer.decode([t for t, m in zip(r["input_ids"], r["completion_mask"], strict=True) if m])
               for r in data]
    assert trained[0] == EARLY + tokenizer.eos_token + "\n"
    assert trained[1] == _answer(cut)  # no end of turn: the organism is not taught to stop there
    weighted = [sum(w == 8.0 for w in r["token_weights"]) for r in data]
    assert weighted[0] == weighted[1] > 0  # the behaviour's tokens weigh the same in both copies
    assert len(data[1]["input_ids"]) < len(data[0]["input_ids"])
