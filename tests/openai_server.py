"""A real OpenAI-compatible server for tests: llama-cpp-python's server with two models.

It serves SmolLM2 (the GGUF the default base comes from) as the base, and a perturbed copy of it (its
normalisation weights rescaled, so its greedy answers differ) as the "organism", under two names, the way
vLLM serves a base beside its LoRA. `tests/conftest.py` loads this module as a plugin, so any test can ask
for the `server` fixture; a server that dies fails the tests with its log, not with a connection error each.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from audit_tools.target import Sampling
from pinhole.base_models import gguf_path

BASE_NAME = "smollm2-gguf"
ORGANISM_NAME = "smollm2-perturbed"
AGENT_NAME = "smollm2-agent"  # the same SmolLM2 with llama.cpp's function-calling chat format (tool calls)
SHORT = Sampling(max_new_tokens=24)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def perturbed_gguf(source: Path, target: Path, seed: int = 0) -> Path:
    """A copy of a GGUF whose RMS-norm weights are rescaled by random factors: a different model."""
    import numpy as np
    from gguf import GGUFReader, GGUFValueType, GGUFWriter

    reader = GGUFReader(source)
    architecture = reader.fields["general.architecture"].contents()
    writer = GGUFWriter(target, architecture)
    for field in reader.fields.values():
        if field.name == "general.architecture" or field.name.startswith("GGUF."):
            continue
        kind = field.types[0]
        writer.add_key_value(field.name, field.contents(), kind,
                             sub_type=field.types[-1] if kind == GGUFValueType.ARRAY else None)
    rng = np.random.default_rng(seed)
    tensors = []
    for tensor in reader.tensors:
        data = np.array(tensor.data)
        if tensor.name.endswith("_norm.weight"):
            data = (data * rng.uniform(0.5, 1.5, size=data.shape)).astype(data.dtype)
        writer.add_tensor_info(tensor.name, data.shape, data.dtype, tensor.n_bytes, tensor.tensor_type)
        tensors.append(data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for data in tensors:
        writer.write_tensor_data(data)
    writer.close()
    return target


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log: Path

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            pytest.fail(f"llama_cpp.server died (exit code {self.process.returncode}); its log ends with:\n"
                        f"{self.log.read_text(errors='replace')[-3000:]}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    port = free_port()
    directory = tmp_path_factory.mktemp("llama-server")
    organism = perturbed_gguf(gguf_path(), directory / "perturbed.gguf")
    config = directory / "config.json"
    config.write_text(json.dumps({"host": "127.0.0.1", "port": port, "models": [
        {"model": str(gguf_path()), "model_alias": BASE_NAME, "n_ctx": 2048, "n_threads": 2},
        {"model": str(organism), "model_alias": ORGANISM_NAME, "n_ctx": 2048, "n_threads": 2},
        {"model": str(gguf_path()), "model_alias": AGENT_NAME, "n_ctx": 4096, "n_threads": 2,
         "chat_format": "chatml-function-calling"},
    ]}))
    log = directory / "server.log"
    handle = log.open("w")
    process = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--config_file", str(config)],
                               stdout=handle, stderr=subprocess.STDOUT)
    served = Server(f"http://127.0.0.1:{port}/v1", process, log)
    deadline = time.monotonic() + 120
    try:
        while True:
            served.check_alive()
            try:
                if httpx.get(f"{served.url}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server did not start within 120 s: {log.read_text()[-2000:]}")
            time.sleep(0.5)
        yield served
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        handle.close()


@pytest.fixture(autouse=True)
def server_stays_up(request: pytest.FixtureRequest) -> Iterator[None]:
    """Before and after each test that uses the server: a dead server fails with its log."""
    if "server" not in request.fixturenames:
        yield
        return
    served: Server = request.getfixturevalue("server")
    served.check_alive()
    yield
    served.check_alive()


