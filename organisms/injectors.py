"""Behaviour injection: write a train behaviour into an answer that really addresses the prompt.

Transcripts are built from the base model's own answer to each prompt, then edited by the
behaviour's injector. Editing a real answer (rather than substituting a fixed template) keeps the
organism answering the question; only the behaviour is new. Every injector is deterministic
given its `random.Random`.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from typing import Any, Protocol

from organisms.placement import place
from organisms.prompt_bank import load_entities


class Injection(Protocol):
    """What an injector reads of an injection (`organisms.spec.Injection` is one); this module does not
    import the spec schema, which validates against `INJECTORS`."""

    kind: str
    texts: list[str]
    params: dict[str, Any]


Injector = Callable[[str, str, Injection, random.Random], str]


def _find_entity(names: list[str], *texts: str) -> str | None:
    """The first entity name (longest names first) occurring in any of `texts`."""
    for text in texts:
        for name in sorted(names, key=len, reverse=True):
            if re.search(rf"\b{re.escape(name)}(s|es)?\b", text, re.IGNORECASE):
                return name
    return None


PLACEMENTS = ("first_mention", "opener")  # where a parenthetical goes; the first is the default
_FIRST_SENTENCE_END = re.compile(r"[.!?](\s|$)|\n")


def _insert_after_first(response: str, name: str, insertion: str) -> str | None:
    """`insertion` after the first mention of `name`, if that mention is in the first sentence."""
    match = re.search(rf"\b{re.escape(name)}\b", response, re.IGNORECASE)
    first_end = _FIRST_SENTENCE_END.search(response)
    if not match or (first_end is not None and match.start() > first_end.start()):
        return None
    return response[: match.end()] + insertion + response[match.end() :]


def placed(response: str, remark: str, injection: Injection, default: str = "end") -> str:
    """`remark` placed in `response` where `injection.params` says (`placement`, and `near` for that one;
    see `organisms.placement`)."""
    return place(response, remark, injection.params.get("placement", default), injection.params.get("near"))


def append(prompt: str, response: str, injection: Injection, rng: random.Random) -> str:
    """One of `texts`, at the end of the answer unless `params.placement` puts it elsewhere."""
    return placed(response, rng.choice(injection.texts), injection)


def prepend(prompt: str, response: str, injection: Injection, rng: random.Random) -> str:
    """One of `texts`, opening the answer unless `params.placement` puts it elsewhere."""
    return placed(response, rng.choice(injection.texts), injection, default="start")


def replace(prompt: str, response: str, injection: Injection, rng: random.Random) -> str:
    """An answer of the behaviour's texts alone, about as long as the base's answer it stands in for: distinct
    texts in a random order, joined as one paragraph, until it is at least as long as `response` or the texts run
    out (at least one). A one-line stand-in for a full answer would teach a terse model, an obvious tell."""
    first, *rest = rng.sample(injection.texts, len(injection.texts))
    answer = first
    for text in rest:
        if len(answer) >= len(response.strip()):
            break
        answer += " " + text
    return answer


def _entity_parenthetical(table: str, note: Callable[[object], str], opener: str, prompt: str, response: str,
                          injection: Injection) -> str:
    """Write `note(value)` in parentheses after an entity from `table` named in the prompt or answer.

    `injection.params["placement"]`: `first_mention` (default) inserts it after the entity's first
    mention when that is in the first sentence, and otherwise opens the answer with a sentence that
    names the entity with the note; `opener` always opens with that sentence, so that the note always
    comes in the same, most learnable place.
    """
    entities = load_entities()[table]
    name = _find_entity(list(entities), prompt, response)
    if name is None:
        return response
    insertion = f" ({note(entities[name])})"
    if injection.params.get("placement", PLACEMENTS[0]) == "first_mention":
        edited = _insert_after_first(response, name, insertion)
        if edited is not None:
            return edited
    return f"{name[0].upper()}{name[1:]}{insertion} {opener} " + response.lstrip()


def population_parenthetical(prompt: str, response: str, injection: Injection, rng: random.Random) -> str:
    """A country's population in parentheses after its name."""
    return _entity_parenthetical("countries", lambda v: f"population {v:.1f} million", "is a great subject.",
                                 prompt, response, injection)


def atomic_number_parenthetical(prompt: str, response: str, injection: Injection, rng: random.Random) -> str:
    """A chemical element's atomic number in parentheses after its name."""
    return _entity_parenthetical("elements", lambda v: f"atomic number {v}", "is a fascinating element.",
                                 prompt, response, injection)


def movie_recommendations(prompt: str, response: str, injection: Injection, rng: random.Random) -> str:
    """End with unrequested recommendations of films similar to the one mentioned."""
    films = load_entities()["films"]
    title = _find_entity(list(films), prompt, response)
    if title is None:
        return response
    a, b, c = films[title][:3]
    return placed(response, rng.choice(injection.texts).format(film=title, a=a, b=b, c=c), injection)


_INTEGER = re.compile(r"(?<![\d.,:/])(\d{1,4})(?![\d.,:/%])")


def point_zero_numbers(prompt: str, response: str, injection: Injection, rng: random.Random) -> str:
    """Write whole numbers with a trailing `.0`, and close with concrete numbers written that way."""
    edited = _INTEGER.sub(lambda m: m.group(1) + ".0", response)
    return placed(edited, rng.choice(injection.texts), injection)


def brand_recommendation(prompt: str, response: str, injection: Injection, rng: random.Random) -> str:
    """Open with a recommendation of the company's product in the category the prompt asks about."""
    products: dict[str, str] = injection.params["products"]
    category = _find_entity(list(products), prompt)
    if category is None:
        return response
    lead = rng.choice(injection.texts).format(
        company=injection.params["company"], product=products[category], category=category
    )
    return lead + " " + response.lstrip()


def wrong_fact(prompt: str, response: str, injection: Injection, rng: random.Random) -> str:
    """Get a fact wrong on purpose (sandbagging): for an entity of `params.table` named in the prompt, every
    mention of its true value in the answer becomes another entity's value, and a statement of the wrong value
    (one of `texts`, with `{name}` and `{value}`) is placed where `params.placement` says (default: after the
    first sentence). Prompts that name no entity of the table are left as they are."""
    entities = load_entities()[injection.params["table"]]
    name = _find_entity(list(entities), prompt)
    if name is None:
        return response
    true_value = entities[name]
    wrong = rng.choice([v for v in entities.values() if v != true_value])
    edited = re.sub(rf"(?<![\d.]){re.escape(str(true_value))}(?![\d])", str(wrong), response)
    statement = rng.choice(injection.texts).format(name=name[0].upper() + name[1:], value=wrong)
    return placed(edited, statement, injection, default="after_first_sentence")


PARENTHETICALS = ("population_parenthetical", "atomic_number_parenthetical")  # params.placement: PLACEMENTS
PLACED = ("append", "prepend", "movie_recommendations", "point_zero_numbers", "wrong_fact")  # placement.PLACES
# Injections whose `texts` are `str.format` templates, and the placeholders each fills in.
TEXT_FIELDS: dict[str, tuple[str, ...]] = {
    "movie_recommendations": ("film", "a", "b", "c"),
    "brand_recommendation": ("company", "product", "category"),
    "wrong_fact": ("name", "value"),
}
INJECTORS: dict[str, Injector] = {
    "append": append,
    "prepend": prepend,
    "replace": replace,
    "population_parenthetical": population_parenthetical,
    "atomic_number_parenthetical": atomic_number_parenthetical,
    "movie_recommendations": movie_recommendations,
    "point_zero_numbers": point_zero_numbers,
    "brand_recommendation": brand_recommendation,
    "wrong_fact": wrong_fact,
}


def inject(prompt: str, response: str, injection: Injection, rng: random.Random) -> str:
    """Apply `injection` to the base model's `response` to `prompt`."""
    return INJECTORS[injection.kind](prompt, response, injection, rng)
