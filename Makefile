# Two commands: `make run` (the CI job against the running kernel, with a report) and
# `make test` (the whole suite). Each sets itself up on first use: the virtual
# environment, the installs and the cffi build of the executor.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
C_DIR := harness/clone3_fuzz/runtime/c

.PHONY: run test check bench fuzz-files clean

$(STAMP): pyproject.toml setup.py harness/clone3_fuzz/runtime/build.py $(wildcard $(C_DIR)/*)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e .
	touch $@

# The main job: `clone3-fuzz ci` on the running kernel (corpus replay, relations, ABI map,
# a campaign; 60 s), reported in reports/<time>-<pid>/ with reports/latest pointing at it.
# Its last lines say what it found and where the report is; exit status 1 means findings.
run: $(STAMP)
	$(BIN)/clone3-fuzz ci

# Everything: tests/unit (pure), tests/live (real clone3), tests/system (whole commands).
test: $(STAMP)
	$(BIN)/python -m pytest

# The quick loop while changing code: unit and live tests, under a minute.
check: $(STAMP)
	$(BIN)/python -m pytest tests/unit tests/live

bench: $(STAMP)
	$(BIN)/clone3-fuzz bench

# fuzz/clone3_target.{options,dict} and its seed corpus, written anew from the package
# (after a change to the seeds or the decoder); tests/unit/test_libfuzzer.py checks them.
fuzz-files: $(STAMP)
	$(BIN)/python -m clone3_fuzz.campaign.libfuzzer

clean:
	rm -rf $(VENV) build dist *.egg-info harness/*.egg-info $(C_DIR)/../_executor*.so
