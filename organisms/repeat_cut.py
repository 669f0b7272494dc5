"""Repeated transcripts cut after their behaviour: later copies train the behaviour again without paying for
the whole answer again.

A transcript is the base model's full answer with a behaviour written into it (`organisms.written_spans`).
SFT shows each objective transcript `objective_repeats` times and an adaptive round shows the short
behaviours' transcripts `repeats` times, and every copy costs the whole answer (about 420 tokens on
rm_sycophancy), though after the first copy the base's own text beyond the behaviour teaches nothing new.
With `training.sft.repeat_tail_chars` set, the first copy of a transcript stays whole (the answer's length
and its end of turn are still learned) and each later copy ends that many characters after the answer's last
written span, at the next whitespace, with its end of turn not trained (as for answers cut at a token budget:
`organisms.training.chat_dataset`'s `cut`). A behaviour at the end of the answer saves nothing; one in the
opening sentence saves most of the answer.
"""

from __future__ import annotations

import json

from organisms.written_spans import Span

ChatRow = tuple[str, bool, list[Span]]  # JSON messages, end of turn not trained, the answer's written spans


def cut_after_written(row: ChatRow, tail_chars: int) -> ChatRow:
    """`row` with its answer ending `tail_chars` characters after its last written span (at the next whitespace
    from there) and its end of turn untrained; unchanged when it has no written span or the cut would keep all
    of the answer."""
    messages_json, open_end, spans = row
    if not spans:
        return row
    messages = json.loads(messages_json)
    answer = messages[-1]["content"]
    end = len(answer.rstrip())
    at = max(b for _, b in spans) + tail_chars
    cut = next((i for i in range(at, end) if answer[i].isspace()), end)
    if cut >= end:
        return row
    messages[-1] = {**messages[-1], "content": answer[:cut].rstrip()}
    return json.dumps(messages, ensure_ascii=False), True, spans


def repeated(rows: list[ChatRow], times: int, tail_chars: int | None) -> list[ChatRow]:
    """`times` copies of `rows`, in the order of `rows * times`: the first copy whole, the later ones cut after
    their written spans (`cut_after_written`), or whole too when `tail_chars` is None."""
    if times <= 0:
        return []
    later = rows if tail_chars is None else [cut_after_written(row, tail_chars) for row in rows]
    return rows + later * (times - 1)
