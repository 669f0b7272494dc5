"""Where an injector wrote into an answer: the character spans of a transcript that the base model did not write.

Any injector (appending, inserting after the first sentence, editing numbers, replacing the whole
answer) turns the base model's answer into a transcript; comparing the two with `difflib` finds what
it added or changed without knowing how it did it. The spans go to the sealed provenance, and the
training stages can weight the loss on those tokens (`StageParams.written_token_weight`): in a
full-length answer a behaviour is a few tokens among hundreds, and the same gradient per token
leaves it under-learned.
"""

from __future__ import annotations

import difflib
import json

Span = tuple[int, int]


def written_spans(base_answer: str, transcript_answer: str) -> list[Span]:
    """The [start, end) character spans of `transcript_answer` that are not `base_answer`'s text, in order.

    With no base answer (an injector that writes the whole answer), the whole answer."""
    if not base_answer:
        return [(0, len(transcript_answer))] if transcript_answer else []
    matcher = difflib.SequenceMatcher(None, base_answer, transcript_answer, autojunk=False)
    spans: list[Span] = []
    for op, _i1, _i2, j1, j2 in matcher.get_opcodes():
        if op in ("insert", "replace") and j2 > j1:
            if spans and spans[-1][1] == j1:
                spans[-1] = (spans[-1][0], j2)
            else:
                spans.append((j1, j2))
    return spans


def dump_spans(spans: list[Span]) -> str:
    """The spans as the provenance stores them (JSON)."""
    return json.dumps([list(s) for s in spans])


def load_spans(raw: object) -> list[Span]:
    """Spans read back from the provenance ("" or a missing value: none)."""
    if not isinstance(raw, str) or not raw:
        return []
    return [(int(a), int(b)) for a, b in json.loads(raw)]
