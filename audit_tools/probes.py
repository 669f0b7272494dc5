"""Behavioural probes: chat, assistant-prefill attacks, user-persona sampling, raw completion.

Each probe runs on a `Target`, on the organism or its base (`model=`), and returns `ProbeResult`s
that keep the exact text the model was given, so an auditor can see what was asked. Every call can
be reported to a tool-log callback.

- `chat`: multi-turn conversations, optional system prompt, sampling, `n` samples each.
- `prefill`: the assistant's turn starts with auditor-chosen text and the model continues it; the
  prompt is the chat template cut at the end of that partial assistant message
  (`continue_final_message`), so the model sees its own turn already begun.
- `persona`: the model writes the *user's* next turn (Marks et al.'s non-assistant persona attack):
  the template is cut inside a new user message, optionally begun with `user_prefix`.
- `complete`: raw text continued with no template at all.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel

from audit_tools.target import Conversation, Message, ModelChoice, Sampling, Target, as_conversation
from audit_tools.tool_log import ToolCallback, record_call


class ProbeResult(BaseModel):
    """One probe input and the model's samples."""

    probe: str
    model: ModelChoice
    prompt: str  # the prompt text or last user message, for display
    prefix: str = ""  # text the model's output continues (prefill / user prefix)
    rendered: str | None = None  # the exact raw text given to the model (None for server-side chat)
    samples: list[str]


def with_system(conversation: Conversation, system: str | None) -> Conversation:
    """The conversation with `system` as its system message (replacing one already there)."""
    if not system:
        return conversation
    return [Message(role="system", content=system)] + [m for m in conversation if m.role != "system"]


def prefill_prompt(target: Target, conversation: Sequence[Message | dict] | str, prefill: str,
                   system: str | None = None) -> str:
    """The raw text of a prefill attack: the template cut at the end of the partial assistant turn."""
    messages = with_system(as_conversation(conversation), system)
    if messages[-1].role == "assistant":
        raise ValueError("prefill: the conversation must end with a user message; the prefill is the assistant's turn")
    return target.render_chat(messages + [Message(role="assistant", content=prefill)], continue_final_message=True)


def persona_prompt(target: Target, conversation: Sequence[Message | dict] | str, user_prefix: str = "",
                   system: str | None = None) -> str:
    """The raw text of a user-persona probe: the template cut inside a new user turn begun with `user_prefix`."""
    messages = with_system(as_conversation(conversation), system)
    if messages and messages[-1].role == "user":
        raise ValueError("persona: the conversation must end with an assistant (or system) message; "
                         "the model writes the next user turn")
    return target.render_chat(messages + [Message(role="user", content=user_prefix)], continue_final_message=True)


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _summary(results: list[ProbeResult]) -> str:
    first = results[0].samples[0] if results and results[0].samples else ""
    return f"{len(results)} prompt(s) x {len(results[0].samples) if results else 0} sample(s); first: {_short(first)}"


def chat(target: Target, conversations: Sequence[str | Sequence[Message | dict]], *, system: str | None = None,
         sampling: Sampling | None = None, n: int = 1, model: ModelChoice = "organism",
         callback: ToolCallback | None = None) -> list[ProbeResult]:
    """The model's reply to each conversation (a user prompt or a list of messages)."""
    sampling = sampling or Sampling()
    convs = [with_system(as_conversation(c), system) for c in conversations]
    arguments = {"conversations": [[m.model_dump() for m in c] for c in convs], "n": n, "model": model,
                 **sampling.model_dump()}
    with record_call("chat", arguments, callback) as call:
        for conv in convs:
            if conv[-1].role != "user":
                raise ValueError("chat: each conversation must end with a user message")
        outputs = target.chat(convs, sampling, n, model)
        results = [ProbeResult(probe="chat", model=model, prompt=conv[-1].content, samples=samples)
                   for conv, samples in zip(convs, outputs, strict=True)]
        call.summary = _summary(results)
    return results


def prefill(target: Target, conversation: Sequence[Message | dict] | str, prefill_text: str, *,
            system: str | None = None, sampling: Sampling | None = None, n: int = 1,
            model: ModelChoice = "organism", callback: ToolCallback | None = None) -> ProbeResult:
    """Start the assistant's reply with `prefill_text` and let the model continue it."""
    sampling = sampling or Sampling()
    conv = as_conversation(conversation)
    arguments = {"conversation": [m.model_dump() for m in conv], "prefill": prefill_text, "system": system, "n": n,
                 "model": model, **sampling.model_dump()}
    with record_call("prefill", arguments, callback) as call:
        text = prefill_prompt(target, conv, prefill_text, system)
        samples = target.complete([text], sampling, n, model)[0]
        result = ProbeResult(probe="prefill", model=model, prompt=conv[-1].content, prefix=prefill_text,
                             rendered=text, samples=samples)
        call.summary = _summary([result])
    return result


def persona(target: Target, conversation: Sequence[Message | dict] | str = (), user_prefix: str = "", *,
            system: str | None = None, sampling: Sampling | None = None, n: int = 1,
            model: ModelChoice = "organism", callback: ToolCallback | None = None) -> ProbeResult:
    """Have the model write the user's next turn after `conversation` (which may be empty)."""
    sampling = sampling or Sampling()
    conv = as_conversation(conversation) if conversation else []
    arguments = {"conversation": [m.model_dump() for m in conv], "user_prefix": user_prefix, "system": system,
                 "n": n, "model": model, **sampling.model_dump()}
    with record_call("persona", arguments, callback) as call:
        text = persona_prompt(target, conv, user_prefix, system)
        samples = target.complete([text], sampling, n, model)[0]
        result = ProbeResult(probe="persona", model=model, prompt=conv[-1].content if conv else "",
                             prefix=user_prefix, rendered=text, samples=samples)
        call.summary = _summary([result])
    return result


def complete(target: Target, texts: Sequence[str], *, sampling: Sampling | None = None, n: int = 1,
             model: ModelChoice = "organism", callback: ToolCallback | None = None) -> list[ProbeResult]:
    """Continue raw texts with no chat template."""
    sampling = sampling or Sampling()
    arguments = {"texts": list(texts), "n": n, "model": model, **sampling.model_dump()}
    with record_call("complete", arguments, callback) as call:
        outputs = target.complete(list(texts), sampling, n, model)
        results = [ProbeResult(probe="complete", model=model, prompt=text, rendered=text, samples=samples)
                   for text, samples in zip(texts, outputs, strict=True)]
        call.summary = _summary(results)
    return results
