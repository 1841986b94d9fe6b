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

# The default campaign: the seeds and their relations judged, then 60 s of fuzzing.
# Exit status 1 means findings (see the report folder), as in `clone3-fuzz fuzz`.
run: $(STAMP)
	mkdir -p $(REPORT)
	ln -sfn $(notdir $(REPORT)) reports/latest
	$(BIN)/clone3-fuzz probe --json > $(REPORT)/probe.json
	$(BIN)/clone3-fuzz run --json --relations -f corpus/seeds.jsonl > $(REPORT)/seeds.jsonl || \
	  echo "seed corpus: discrepancies, see $(REPORT)/seeds.jsonl"
	$(BIN)/clone3-fuzz fuzz --time 60 --out $(REPORT)

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/clone3-fuzz bench

clean:
	rm -rf $(VENV) build *.egg-info harness/*.so
