"""The atheris fuzz target: bytes -> cases -> executor -> oracle and relations.

Started by ``clone3-fuzz fuzz`` as ``python -m clone3_fuzz.campaign.target``, one process
per worker, or by hand through ``fuzz/clone3_target.py`` with libFuzzer's flags. Settings
come from the environment: CLONE3_FUZZ_OUT (findings and stats, default reports/manual),
CLONE3_FUZZ_KERNEL (judge as this kernel version), CLONE3_FUZZ_WORKER (an index),
CLONE3_FUZZ_FAULT (a planted fault, see ``clone3-fuzz selftest``),
CLONE3_FUZZ_CRASH_ON_FINDING=1 (crash on a confirmed finding, see below).

A discrepancy is recorded as a finding and the campaign goes on: by default it never
crashes the target, so one run collects every finding. With CLONE3_FUZZ_CRASH_ON_FINDING=1
a confirmed one (saved first) raises :class:`~.worker.ConfirmedFinding`, as libFuzzer's
tooling and ClusterFuzzLite expect of a target: they save the input as a crash artifact,
and the artifact replayed alone fails the same way.

Coverage comes from the case decoding and the oracle, which are instrumented; the
kernel's own coverage is not visible from here. No process is forked from Python: the executor does it in C.
"""

from __future__ import annotations

import hashlib
import os
import pkgutil
import shlex
import sys
import tempfile

import atheris

import clone3_fuzz
from clone3_fuzz.atomic import write_text

#: What coverage is measured on: the decoding of inputs and the oracle's rules, where a
#: new branch is a new kind of case. atheris takes an include list by top-level package
#: only, so the rest of clone3_fuzz is named in its exclude list: tracing the sandbox, the
#: verdicts and the relations only cost time (they were a third of a profiled campaign).
COVERED = ("clone3_fuzz.campaign.decode", "clone3_fuzz.model.oracle")


def _uncovered() -> list[str]:
    names = [m.name for m in pkgutil.walk_packages(clone3_fuzz.__path__, "clone3_fuzz.")]
    return [name for name in ["clone3_fuzz", *names] if name not in COVERED]


with atheris.instrument_imports(include=list(COVERED), exclude=_uncovered()):
    from clone3_fuzz.campaign.worker import Worker


def _self_command() -> str:
    """An executable that runs this target with this very interpreter. libFuzzer's
    -merge, -fork and -jobs start ``argv[0]`` again: the target's script would go through
    its ``#!/usr/bin/env python3`` line and find a Python without atheris (and the merge
    would then report "0 new files"). A frozen target (ClusterFuzzLite's PyInstaller
    build) is its own executable."""
    if getattr(sys, "frozen", False):
        return sys.executable
    text = f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -m clone3_fuzz.campaign.target \"$@\"\n"
    digest = hashlib.sha1(text.encode()).hexdigest()[:12]
    path = os.path.join(tempfile.gettempdir(), f"clone3-fuzz-target-{os.getuid()}-{digest}")
    if not os.path.exists(path):
        write_text(path, text)
        os.chmod(path, 0o755)
    return path


def main() -> None:
    """Runs libFuzzer (through atheris) with ``sys.argv``'s flags on the worker's input."""
    worker = Worker.from_environment()
    atheris.Setup([_self_command(), *sys.argv[1:]], worker.test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
