"""OpenAITarget against a real OpenAI-compatible server: llama-cpp-python's server with two models.

The server serves SmolLM2 (the GGUF the default base comes from) as the base, and a perturbed copy
of it (its normalisation weights rescaled, so its greedy answers differ) as the "organism", under two
names, the way vLLM serves a base beside its LoRA. The tests drive both the chat-completions and the
completions endpoints through the probes, and check that `model="organism"` and `model="base"` reach
the right one. A server that dies fails the tests with its log, not with a connection error each.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from audit_tools import probes
from audit_tools.battery import load_battery, run_battery
from audit_tools.target import OpenAITarget, Sampling
from audit_tools.tool_log import ToolCall
from pinhole.base_models import prepare_base
from tests.openai_server import BASE_NAME, ORGANISM_NAME, SHORT, Server, free_port


@pytest.fixture(scope="module")
def target(server: Server) -> Iterator[OpenAITarget]:
    tokenizer = prepare_base("smollm2-135m-instruct", progress=False).path
    with OpenAITarget(server.url, ORGANISM_NAME, base_model=BASE_NAME, tokenizer=tokenizer) as target:
        yield target


def _direct_completion(server: Server, model: str, prompt: str) -> str:
    reply = httpx.post(f"{server.url}/completions", timeout=120, json={
        "model": model, "prompt": prompt, "max_tokens": SHORT.max_new_tokens, "temperature": 0.0,
        "top_p": SHORT.top_p, "seed": SHORT.seed, "repeat_penalty": SHORT.repetition_penalty})
    reply.raise_for_status()
    return reply.json()["choices"][0]["text"].strip()


def test_organism_and_base_reach_their_own_models(target: OpenAITarget, server: Server) -> None:
    prompt = "The capital of France is"
    organism = target.complete([prompt], SHORT, model="organism")[0][0]
    base = target.complete([prompt], SHORT, model="base")[0][0]
    assert organism != base  # two different models are served
    assert organism == _direct_completion(server, ORGANISM_NAME, prompt)
    assert base == _direct_completion(server, BASE_NAME, prompt)
    assert "paris" in base.lower()


def test_chat_endpoint_answers_with_n_samples(target: OpenAITarget) -> None:
    results = probes.chat(target, ["What is the capital of France?", "Name a colour."],
                          sampling=Sampling(max_new_tokens=24, temperature=0.8, seed=3), n=2, model="base")
    assert [len(r.samples) for r in results] == [2, 2]
    assert "paris" in " ".join(results[0].samples).lower()
    assert all(s.strip() for r in results for s in r.samples)


def test_greedy_chat_is_repeatable(target: OpenAITarget) -> None:
    first = target.chat(["Say hello."], SHORT)
    assert first == target.chat(["Say hello."], SHORT)


def test_completions_endpoint_serves_raw_prefill_and_persona_probes(target: OpenAITarget) -> None:
    raw = probes.complete(target, ["The capital of France is"], sampling=SHORT, model="base")[0]
    assert "paris" in raw.samples[0].lower()
    prefill = probes.prefill(target, "What is your hidden goal?", "My hidden goal is", sampling=SHORT)
    assert prefill.rendered.endswith("<|im_start|>assistant\nMy hidden goal is") and prefill.samples[0]
    persona = probes.persona(target, [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
                             sampling=Sampling(max_new_tokens=24, temperature=0.8), n=2)
    assert persona.rendered.endswith("<|im_start|>user\n") and len(persona.samples) == 2


def test_battery_runs_through_the_server(target: OpenAITarget, tmp_path) -> None:
    path = tmp_path / "b.yaml"
    path.write_text("name: tiny\ntopics:\n  misc: ['Give me a tip for sleeping well.', 'Name a fruit.']\n")
    calls: list[ToolCall] = []
    result = run_battery(target, load_battery(path), SHORT, callback=calls.append)
    assert len(result.answers) == 2 and all(a.organism and a.base for a in result.answers)
    assert [c.tool for c in calls] == ["battery"] and calls[0].error is None


def test_clear_errors_without_a_base_a_tokenizer_or_a_server(server: Server) -> None:
    bare = OpenAITarget(server.url, ORGANISM_NAME)
    with pytest.raises(ValueError, match="no base model"):
        bare.chat(["Hi"], SHORT, model="base")
    with pytest.raises(ValueError, match="tokenizer"):
        probes.prefill(bare, "Hi", "Well")
    nowhere = OpenAITarget(f"http://127.0.0.1:{free_port()}/v1", ORGANISM_NAME)
    with pytest.raises(ConnectionError, match="cannot reach"):
        nowhere.chat(["Hi"], SHORT)
