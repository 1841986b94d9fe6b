# Two commands: `make run` (a campaign against the running kernel, with a report) and
# `make test` (the whole suite). Each sets itself up on first use: the virtual
# environment, the installs and the cffi build of the executor.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench clean

$(STAMP): pyproject.toml setup.py harness/_executor_build.py $(wildcard harness/c/*)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e .
	touch $@

# The main job: `clone3-fuzz ci` on the running kernel (corpus replay, relations, ABI map,
# a campaign; 60 s), reported in reports/<time>/ with reports/latest pointing at it. Its
# last lines say what it found and where the report is; exit status 1 means findings.
run: $(STAMP)
	$(BIN)/clone3-fuzz ci

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/clone3-fuzz bench

clean:
	rm -rf $(VENV) build *.egg-info harness/*.so
