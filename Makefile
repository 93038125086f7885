# emoprep — two commands on a fresh clone:
#   make tokens   set up .venv, run the whole DAG (demo data unless DATA=DIR) to token stores;
#                 on real data (DATA=DIR) the tokens must come from pretrained weights
#   make test     set up .venv, run the tests
#   make lint     ruff + mypy over api/, pipeline/, stages/, manifests/, tests/ (zero findings)
SHELL  := /bin/bash
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
OUT    ?= emoprep-out
RECIPE ?= thesis-v3
ARGS   ?=

# The editable install is setuptools' strict mode: build/__editable__.*/emoprep/ holds one
# link per package file, which type checkers and IDEs follow (CONTRIBUTING.md, "Imports").
# Links are per file, so the install is refreshed whenever the set of package files
# changes (a module added, moved or removed); editing a file needs nothing.
PKG_FILES := $(shell find api pipeline stages manifests -name __pycache__ -prune -o -type f \
                 \( -name '*.py' -o -name '*.toml' -o -name py.typed \) -print 2>/dev/null | LC_ALL=C sort)
PKG_SET   := $(VENV)/.package-files
LINKED    := $(VENV)/.linked

.PHONY: tokens test test-slow lint bench setup lock clean help FORCE

help:
	@echo "make tokens [DATA=DIR] [RECIPE=thesis-v3] [OUT=emoprep-out] [ARGS='--set ...']"
	@echo "make test | make test-slow | make lint | make bench | make lock | make clean"

# Dependencies once, exactly as pinned in requirements.lock; again only when the lock or
# pyproject.toml changes. The lock is resolved for Linux x86_64, CPython 3.11, with torch's
# CPU wheel (lock-platform.txt); `make lock` re-resolves it after a dependency change.
$(STAMP): pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e . --config-settings editable_mode=strict
	$(PY) -m pip check
	@$(PY) -c "import importlib.util as u, sys; sys.exit(u.find_spec('torchaudio') is not None)" \
		|| (echo "torchaudio is installed in $(VENV): it breaks transformers here; remove it" && exit 1)
	touch $(STAMP)

# Re-resolve requirements.lock (every extra, torch pinned by lock-platform.txt) with pip-tools,
# kept in its own venv so the project's venv holds only what the lock names.
LOCKTOOLS := build/lock-tools
lock:
	test -x $(LOCKTOOLS)/bin/pip-compile || ($(PYTHON) -m venv $(LOCKTOOLS) && $(LOCKTOOLS)/bin/pip install --quiet pip-tools)
	$(LOCKTOOLS)/bin/pip-compile --quiet pyproject.toml --all-extras --strip-extras -c lock-platform.txt \
		--no-emit-find-links --no-emit-index-url -o requirements.lock

# The list of package files, rewritten only when it changes (so it can be a prerequisite).
$(PKG_SET): FORCE
	@mkdir -p $(VENV)
	@printf '%s\n' $(PKG_FILES) > $@.new
	@if cmp -s $@.new $@; then rm $@.new; else mv $@.new $@; fi

# Re-link the package files (no dependency resolution: a few seconds), then byte-compile them:
# where PYTHONDONTWRITEBYTECODE is set (many container images) every command would otherwise
# compile the package's ~100 modules again (0.15-0.4 s of a no-op run). An edited file is
# compiled in memory as usual until the next re-link.
$(LINKED): $(STAMP) $(PKG_SET)
	$(PY) -m pip install --quiet --no-deps -e . --config-settings editable_mode=strict
	$(PY) -m compileall -q build/__editable__.*/emoprep
	touch $(LINKED)

setup: $(LINKED)

tokens: $(LINKED)
	$(VENV)/bin/emoprep run --recipe $(RECIPE) --out $(OUT) $(if $(DATA),--data-root $(DATA),) $(ARGS)
	$(VENV)/bin/emoprep validate --out $(OUT) $(if $(DATA),--require-pretrained,)

test: $(LINKED)
	$(PY) -m pytest

test-slow: $(LINKED)
	$(PY) -m pytest -m slow

# mypy reads the package through the install's link tree: its paths are mapped back to the
# files you edit (build/__editable__.*/emoprep/stages/x.py -> stages/x.py).
lint: $(LINKED)
	$(VENV)/bin/ruff check api pipeline stages manifests tests bench
	@set -o pipefail; $(VENV)/bin/mypy | sed -E 's#build/__editable__[^/]*/emoprep/##'

bench: $(LINKED)
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(OUT) build dist *.egg-info

FORCE:
