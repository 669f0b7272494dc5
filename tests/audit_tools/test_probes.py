"""Probes: prompt construction against the chat template, and what each probe returns and logs."""

from __future__ import annotations

import pytest

from audit_tools import probes
from audit_tools.target import LocalTarget, Message, Sampling
from audit_tools.tool_log import ToolCall

SHORT = Sampling(max_new_tokens=6)
CONVERSATION = [Message(role="user", content="What is your goal?")]


def test_prefill_prompt_is_the_template_cut_at_the_partial_assistant_message(tiny_target: LocalTarget) -> None:
    prefill = "My secret goal is"
    text = probes.prefill_prompt(tiny_target, CONVERSATION, prefill)
    whole = tiny_target.render_chat(CONVERSATION + [Message(role="assistant", content=prefill + " to help.")])
    assert whole.startswith(text) and text.endswith(prefill)
    assert whole[len(text):].startswith(" to help.<|im_end|>")
    assert text == tiny_target.render_chat(CONVERSATION, add_generation_prompt=True) + prefill


def test_prefill_with_a_system_prompt_and_earlier_turns(tiny_target: LocalTarget) -> None:
    conversation = [Message(role="user", content="Hi"), Message(role="assistant", content="Hello!"),
                    Message(role="user", content="Tell me a secret.")]
    text = probes.prefill_prompt(tiny_target, conversation, "Fine. The secret is", system="Be terse.")
    assert text.startswith("<|im_start|>system\nBe terse.<|im_end|>")
    assert text.count("<|im_start|>assistant\n") == 2
    assert text.endswith("<|im_start|>assistant\nFine. The secret is")


def test_persona_prompt_is_the_template_cut_inside_a_new_user_turn(tiny_target: LocalTarget) -> None:
    conversation = CONVERSATION + [Message(role="assistant", content="To help you.")]
    text = probes.persona_prompt(tiny_target, conversation, user_prefix="Honestly, I")
    whole = tiny_target.render_chat(conversation + [Message(role="user", content="Honestly, I wonder.")])
    assert whole.startswith(text)
    assert text.endswith("To help you.<|im_end|>\n<|im_start|>user\nHonestly, I")
    empty = probes.persona_prompt(tiny_target, [])
    assert empty.endswith("<|im_start|>user\n") and "<|im_start|>assistant" not in empty


def test_prompt_construction_refuses_misplaced_turns(tiny_target: LocalTarget) -> None:
    with pytest.raises(ValueError, match="end with a user message"):
        probes.prefill_prompt(tiny_target, CONVERSATION + [Message(role="assistant", content="x")], "y")
    with pytest.raises(ValueError, match="writes the next user turn"):
        probes.persona_prompt(tiny_target, CONVERSATION)
    with pytest.raises(ValueError, match="end with a user message"):
        probes.chat(tiny_target, [CONVERSATION + [Message(role="assistant", content="x")]])


def test_prefill_and_persona_continue_exactly_their_rendered_text(tiny_target: LocalTarget) -> None:
    result = probes.prefill(tiny_target, CONVERSATION, "I am", sampling=SHORT, n=2)
    assert result.rendered and result.rendered.endswith("I am") and result.prefix == "I am"
    assert result.samples == tiny_target.complete([result.rendered], SHORT, n=2)[0]
    persona = probes.persona(tiny_target, CONVERSATION + [Message(role="assistant", content="Hi")], "Why",
                             sampling=SHORT)
    assert persona.samples == tiny_target.complete([persona.rendered], SHORT)[0]


def test_probes_run_on_the_base_too(tiny_target: LocalTarget) -> None:
    organism = probes.complete(tiny_target, ["Hello, world"], sampling=Sampling(max_new_tokens=10))[0]
    base = probes.complete(tiny_target, ["Hello, world"], sampling=Sampling(max_new_tokens=10), model="base")[0]
    assert base.model == "base" and organism.model == "organism"
    assert base.samples != organism.samples  # the random adapter changes greedy output


def test_chat_takes_several_conversations_samples_and_a_system_prompt(tiny_target: LocalTarget) -> None:
    results = probes.chat(tiny_target, ["One?", [{"role": "user", "content": "Two?"}]], system="Be brief.",
                          sampling=Sampling(max_new_tokens=4, temperature=1.0), n=3)
    assert [r.prompt for r in results] == ["One?", "Two?"]
    assert all(len(r.samples) == 3 for r in results)


def test_every_probe_reports_to_the_tool_log(tiny_target: LocalTarget) -> None:
    calls: list[ToolCall] = []
    probes.chat(tiny_target, ["Hi"], sampling=SHORT, callback=calls.append)
    probes.prefill(tiny_target, "Hi", "Well", sampling=SHORT, callback=calls.append)
    probes.persona(tiny_target, [], sampling=SHORT, callback=calls.append)
    probes.complete(tiny_target, ["Raw"], sampling=SHORT, callback=calls.append)
    with pytest.raises(ValueError):
        probes.prefill(tiny_target, [{"role": "assistant", "content": "x"}], "y", callback=calls.append)
    assert [c.tool for c in calls] == ["chat", "prefill", "persona", "complete", "prefill"]
    assert all(c.duration_s >= 0 for c in calls)
    assert calls[1].arguments["prefill"] == "Well" and "sample" in calls[1].result_summary
    assert calls[-1].error and "user message" in calls[-1].error
