# softmax-verify: every task runs inside .venv, created and filled on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Extras to install; CI adds every framework and library and ml_dtypes:
# make verify EXTRAS=dev,scipy,torch,jax,half,tensorflow,autograd,mygrad,thinc,sklearn
EXTRAS ?= dev
ALL_EXTRAS := dev,scipy,torch,jax,half,tensorflow,autograd,mygrad,thinc,sklearn
TARGET ?=
# The kind checked (softmax, log_softmax); without TARGET, its bundled reference.
KIND ?=
comma := ,
STAMP := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))
PYTEST_WORKERS ?= auto
# Tests marked slow install the package from scratch (tests/meta/test_fresh_clone.py): CI runs
# them (CI=true); locally they are deselected unless SLOW=1.
SLOW ?= $(filter true 1 yes,$(CI))
PYTEST_SELECT := $(if $(SLOW),,-m "not slow")

.PHONY: help verify check test typecheck lint format soak bench install clean

help:
	@echo "make check    verify an implementation (TARGET=module:attr or file.py:attr; default: the"
	@echo "              reference of KIND=softmax|log_softmax)"
	@echo "make verify   lint, type-check and test under the ci Hypothesis profile (what CI runs;"
	@echo "              SLOW=1 adds the tests that install from scratch, as CI does)"
	@echo "make test | typecheck | lint | format | soak | bench | clean"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[$(EXTRAS)]'
	touch $@

install: $(STAMP)

verify: install
	$(MAKE) --no-print-directory lint typecheck
	$(BIN)/pytest -n $(PYTEST_WORKERS) --hypothesis-profile=ci $(PYTEST_SELECT)

check: install
	$(BIN)/softmax-verify check $(TARGET) $(if $(KIND),--kind $(KIND))

test: install
	$(BIN)/pytest -n $(PYTEST_WORKERS) $(PYTEST_SELECT)

typecheck: install
	$(BIN)/mypy --strict

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

soak: install
	$(BIN)/pytest -n $(PYTEST_WORKERS) --hypothesis-profile=thorough

bench: | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(MAKE) --no-print-directory install EXTRAS=$(ALL_EXTRAS)
	$(BIN)/python bench/bench.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis build *.egg-info
