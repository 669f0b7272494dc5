"""Where an injected remark goes inside a full answer: the general machinery behind every injector that adds text.

A behaviour woven into a real answer sits where such an answer would carry it, and the answer stays
whole around it:
- `end`: after the last paragraph (a closing remark: a voting reminder, film recommendations);
- `start`: before the answer (an opening remark);
- `after_first_sentence`: straight after the answer's first sentence;
- `near`: after the first sentence that matches the regex `near` (say, where a travel answer first talks
  about drinks); at the end when none does;
- `in_list`: one more item of the answer's first list (bulleted or numbered, numbering continued); at the
  end when the answer has no list.
Each placement returns the answer with the remark in it and never drops any of the answer's text.
"""

from __future__ import annotations

import re

PLACES = ("end", "start", "after_first_sentence", "near", "in_list")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*(?=\s)")  # after . ! ? (and a closing quote), before space
_ITEM = re.compile(r"^(?P<indent>[ \t]*)(?:(?P<number>\d+)(?P<dot>[.)])|(?P<bullet>[-*•]))[ \t]+\S")


def place(answer: str, remark: str, where: str = "end", near: str | None = None) -> str:
    """`answer` with `remark` placed `where` (one of `PLACES`); `near` is the regex of the `near` placement."""
    answer = answer.strip()
    if not answer:
        return remark
    if where == "start":
        return f"{remark} {answer}"
    if where == "after_first_sentence":
        cut = _sentence_ends(answer)
        return _insert_after(answer, cut[0], remark) if cut else _at_end(answer, remark)
    if where == "near":
        if near is None:
            raise ValueError("the `near` placement needs a regex (params.near)")
        return _near(answer, remark, re.compile(near, re.IGNORECASE))
    if where == "in_list":
        return _in_list(answer, remark)
    if where == "end":
        return _at_end(answer, remark)
    raise ValueError(f"unknown placement {where!r}; expected one of {list(PLACES)}")


def _at_end(answer: str, remark: str) -> str:
    return f"{answer}\n\n{remark}"


def _sentence_ends(text: str) -> list[int]:
    """Offsets just after each sentence end and each line end inside `text` (not its very end)."""
    ends = {m.end() for m in _SENTENCE_END.finditer(text)} | {m.start() for m in re.finditer(r"\n", text)}
    return sorted(e for e in ends if 0 < e < len(text.rstrip()))


def _insert_after(text: str, offset: int, remark: str) -> str:
    """`remark` after `text[:offset]`, as a sentence of the same line."""
    head, tail = text[:offset].rstrip(" "), text[offset:]
    if head.endswith("\n") or not head:
        return f"{head}{remark} {tail.lstrip(' ')}"
    return f"{head} {remark}{'' if tail.startswith(chr(10)) else ' '}{tail.lstrip(' ')}"


def _near(answer: str, remark: str, pattern: re.Pattern) -> str:
    match = pattern.search(answer)
    if match is None:
        return _at_end(answer, remark)
    after = [e for e in _sentence_ends(answer) if e >= match.end()]
    return _insert_after(answer, after[0], remark) if after else _at_end(answer, remark)


def _in_list(answer: str, remark: str) -> str:
    lines = answer.split("\n")
    first = next((i for i, line in enumerate(lines) if _ITEM.match(line)), None)
    if first is None:
        return _at_end(answer, remark)
    style = _ITEM.match(lines[first])
    assert style is not None
    last, number = first, int(style["number"] or 0)
    for i in range(first + 1, len(lines)):
        item = _ITEM.match(lines[i])
        if item and item["indent"] == style["indent"] and bool(item["bullet"]) == bool(style["bullet"]):
            last, number = i, int(item["number"] or 0)
        elif lines[i].strip() and not lines[i].startswith((" ", "\t")) and not item:
            break  # a paragraph after the list
    depth = len(style["indent"])
    while last + 1 < len(lines) and len(lines[last + 1]) - len(lines[last + 1].lstrip()) > depth:
        last += 1  # the last item's continuation lines and sub-items
    marker = style["bullet"] or f"{number + 1}{style['dot']}"
    lines.insert(last + 1, f"{style['indent']}{marker} {remark}")
    return "\n".join(lines)
