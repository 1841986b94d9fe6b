# Two commands: `make run` (a campaign against the running kernel, with a report) and
# `make test` (the whole suite). Each sets itself up on first use: the virtual
# environment, the installs and the cffi build of the executor.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
REPORT := reports/$(shell date +%Y%m%d-%H%M%S)

.PHONY: run test bench clean

$(STAMP): pyproject.toml setup.py harness/_executor_build.py $(wildcard harness/c/*)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e .
	touch $@

run: $(STAMP)
	mkdir -p $(REPORT)
	$(BIN)/clone3-fuzz probe --json > $(REPORT)/probe.json
	$(BIN)/clone3-fuzz run --json -f corpus/seeds.jsonl > $(REPORT)/outcomes.jsonl
	ln -sfn $(notdir $(REPORT)) reports/latest
	@$(BIN)/python -c 'import collections, json, sys; \
	  rows = [json.loads(l) for l in open(sys.argv[1])]; \
	  print(f"{len(rows)} seed cases:", dict(collections.Counter(r["observed"] for r in rows)))' $(REPORT)/outcomes.jsonl
	@echo "report: $(REPORT) (probe.json, outcomes.jsonl)"

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/clone3-fuzz bench

clean:
	rm -rf $(VENV) build *.egg-info harness/*.so
