# Two entry points for a fresh machine (see README):
#   make train   set up .venv and run the main job
#   make test    set up .venv (with the test-only reference reader ffcv) and run the tests
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
DATA   ?= data

.PHONY: setup train test clean

$(VENV)/.installed: pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

$(VENV)/.test-deps: $(VENV)/.installed scripts/install-test-deps.sh
	PY=$(PY) sh scripts/install-test-deps.sh
	touch $@

setup: $(VENV)/.installed

# The main job. Until the trainer lands it prepares CIFAR-100 (download, md5 check, conversion).
train: $(VENV)/.installed
	$(VENV)/bin/fastvis-convert cifar100 $(DATA)/cifar100-train.beton --split train
	$(VENV)/bin/fastvis-convert cifar100 $(DATA)/cifar100-test.beton --split test
	$(VENV)/bin/fastvis-inspect $(DATA)/cifar100-train.beton

test: $(VENV)/.test-deps
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
