# emoprep — two commands on a fresh clone:
#   make tokens   set up .venv, run the whole DAG (demo data unless DATA=DIR) to token stores
#   make test     set up .venv, run the tests
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
OUT    ?= emoprep-out
RECIPE ?= thesis-v3
ARGS   ?=

.PHONY: tokens test test-slow bench setup clean help

help:
	@echo "make tokens [DATA=DIR] [RECIPE=thesis-v3] [OUT=emoprep-out] [ARGS='--set ...']"
	@echo "make test | make test-slow | make bench | make clean"

# Install once; re-install only when pyproject.toml changes. torch==2.13.0 is a local CPU wheel here.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@$(PY) -c "import importlib.util as u, sys; sys.exit(u.find_spec('torchaudio') is not None)" \
		|| (echo "torchaudio is installed in $(VENV): it breaks transformers here; remove it" && exit 1)
	touch $(STAMP)

setup: $(STAMP)

tokens: $(STAMP)
	$(VENV)/bin/emoprep run --recipe $(RECIPE) --out $(OUT) $(if $(DATA),--data-root $(DATA),) $(ARGS)
	$(VENV)/bin/emoprep validate --out $(OUT)

test: $(STAMP)
	$(PY) -m pytest

test-slow: $(STAMP)
	$(PY) -m pytest -m slow

bench: $(STAMP)
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(OUT) build dist *.egg-info
