# Two entry points for a fresh machine (see README):
#   make train   set up .venv and run the main job
#   make test    set up .venv (with DALI and the test-only reference reader ffcv) and run the tests
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python

.PHONY: setup train test test-fast clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

$(VENV)/.test-deps: $(VENV)/.installed scripts/install-test-deps.sh
	$(PY) -m pip install -q -e '.[dali]'
	PY=$(PY) sh scripts/install-test-deps.sh
	touch $@

setup: $(VENV)/.installed

# The main job: CIFAR-100 (downloaded, md5-checked and converted on first use) in a 3-hour budget.
# Offline: make train DATA=path/to/cifar-100-python.tar.gz (add TRAIN_ARGS=--no-verify for a copy
# that is not the official archive).
BUDGET ?= 3h
DATA ?= cifar100
TRAIN_ARGS ?=
train: $(VENV)/.installed
	$(VENV)/bin/fastvis-train --data $(DATA) --budget $(BUDGET) --out runs/cifar100-$(BUDGET) $(TRAIN_ARGS)

test: $(VENV)/.test-deps
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

# The developer's loop: the suite without the slow tests (trainings in other processes, torchrun,
# killed runs, compiles, real-data checks; tests/conftest.py marks them)
test-fast: $(VENV)/.test-deps
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
