# Two entry points for a fresh clone: `make demo` and `make test`.
# Both create .venv if missing and install the pinned dependencies (constraints.txt) first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.aekit-installed
MKDOCS := NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

.PHONY: demo test lint bench clean docs

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e '.[dev,docs,serve,export,tensorboard,baselines]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/aekit demo

test: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks scripts
	$(PY) -m mypy
	$(PY) -m pytest -q
	$(MKDOCS)

# The documentation site, offline, into site/; --strict: a broken link or reference fails the build.
# NO_MKDOCS_2_WARNING: Material's banner about MkDocs 2.0, printed on every build, says nothing about this site.
docs: $(STAMP)
	$(MKDOCS)

bench: $(STAMP)
	$(PY) benchmarks/throughput.py

clean:
	rm -rf $(VENV) runs .pytest_cache
