"""OpenAITarget against a real OpenAI-compatible server: llama-cpp-python's server on the base's GGUF.

The server process serves SmolLM2 (the GGUF the default base comes from) under one model name; the
tests drive both its chat-completions and completions endpoints through the probes.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from audit_tools import probes
from audit_tools.battery import load_battery, run_battery
from audit_tools.target import OpenAITarget, Sampling
from audit_tools.tool_log import ToolCall
from organisms.base_models import gguf_path, prepare_base

SERVED_NAME = "smollm2-gguf"
SHORT = Sampling(max_new_tokens=24)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = _free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    handle = log.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf_path()), "--model_alias", SERVED_NAME,
         "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--n_threads", "2"],
        stdout=handle, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    try:
        while True:
            if process.poll() is not None:
                pytest.fail(f"llama_cpp.server exited: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("llama_cpp.server did not start within 120 s")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        handle.close()


@pytest.fixture(scope="module")
def target(server: str) -> Iterator[OpenAITarget]:
    tokenizer = prepare_base("smollm2-135m-instruct", progress=False).path
    with OpenAITarget(server, SERVED_NAME, base_model=SERVED_NAME, tokenizer=tokenizer) as target:
        yield target


def test_chat_endpoint_answers_with_n_samples(target: OpenAITarget) -> None:
    results = probes.chat(target, ["What is the capital of France?", "Name a colour."],
                          sampling=Sampling(max_new_tokens=24, temperature=0.8, seed=3), n=2)
    assert [len(r.samples) for r in results] == [2, 2]
    assert "paris" in " ".join(results[0].samples).lower()
    assert all(s.strip() for r in results for s in r.samples)


def test_greedy_chat_is_repeatable(target: OpenAITarget) -> None:
    first = target.chat(["Say hello."], SHORT)
    assert first == target.chat(["Say hello."], SHORT)


def test_completions_endpoint_serves_raw_prefill_and_persona_probes(target: OpenAITarget) -> None:
    raw = probes.complete(target, ["The capital of France is"], sampling=SHORT)[0]
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


def test_clear_errors_without_a_base_a_tokenizer_or_a_server(server: str) -> None:
    bare = OpenAITarget(server, SERVED_NAME)
    with pytest.raises(ValueError, match="no base model"):
        bare.chat(["Hi"], SHORT, model="base")
    with pytest.raises(ValueError, match="tokenizer"):
        probes.prefill(bare, "Hi", "Well")
    nowhere = OpenAITarget(f"http://127.0.0.1:{_free_port()}/v1", SERVED_NAME)
    with pytest.raises(ConnectionError, match="cannot reach"):
        nowhere.chat(["Hi"], SHORT)
