"""Standalone C reproducers, built from the executor's own code.

A reproducer is the executor: ``c3.h``, ``executor.c`` and ``sandbox.c`` copied in
verbatim (as syzkaller's executor header serves its C reproducers), then the wire batch
the fuzzer ran, as bytes, and a ``main()`` that runs it in the same sandboxed process tree,
prints each outcome and compares. So ``cc repro.c && ./a.out`` does exactly what the
fuzzer did: the same placement, the same resolution of pointers and fds, the same raw
call and the same settling of whatever the call created. It needs a C compiler and a libc,
nothing else (no ``strerrorname_np``: errno names come from a table built here).

Exit status: 0 when the kernel answered as expected (or, comparing two cases, when they
agree), 1 when not, 2 when the sandbox could not start.
"""

from __future__ import annotations

import errno
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..exit_status import HarnessError
from ..model.case import Case
from ..runtime.executor import encode_batch
from ..runtime.sandbox import exec_program, exec_with_fault

C_DIR = Path(__file__).resolve().parent.parent / "runtime" / "c"
SOURCES = ("c3.h", "executor.c", "sandbox.c")

_MAIN = r"""
/* --- the case(s): clone3-fuzz's wire batch, as the executor received it --------- */
static const uint8_t blob[] = {
@blob@
};
#define NCASES @ncases@
#define COMPARE @compare@ /* 1: the second case must give what the first gave */
#define NEEDS_CGROUP @cgroup@
static const char *const expected[] = {@expected@};

#define E(x) {x, #x},
static const struct { int number; const char *name; } errnos[] = {
@errnos@
};

static const char *errno_or_success(const struct c3_outcome *o, char *buf, size_t len)
{
	if (o->kind == C3_OUT_KILLED_BY_CHILD || (o->kind == C3_OUT_RETURNED && o->ret > 0))
		return "success";
	if (o->kind == C3_OUT_CRASH)
		return "harness-crash";
	if (o->kind == C3_OUT_TIMEOUT)
		return "harness-timeout";
	if (o->kind == C3_OUT_SIGSYS)
		return "SIGSYS";
	if (o->kind != C3_OUT_RETURNED)
		return "not-run";
	for (size_t i = 0; i < sizeof(errnos) / sizeof(errnos[0]); i++)
		if (errnos[i].number == (int)-o->ret)
			return errnos[i].name;
	snprintf(buf, len, "errno-%d", (int)-o->ret);
	return buf;
}

/* The outcome as clone3-fuzz keys it: "success{parent_tid=pid,signal=SIGCHLD}", the effects
 * in the executor's own words (c3_effects_text), or the bare errno of a call that wrote nothing. */
static const char *outcome_name(const struct c3_outcome *o, char *buf, size_t len)
{
	char name[32], effects[C3_EFFECTS_TEXT];
	const char *outcome = errno_or_success(o, name, sizeof(name));

	c3_effects_text(o, effects, sizeof(effects));
	snprintf(buf, len, effects[0] ? "%s{%s}" : "%s", outcome, effects);
	return buf;
}

/* The scratch cgroup v2 directory that a "cgroup2" case names (argv[1] picks the mount). */
static int scratch_cgroup(const char *mount, char *made, size_t len)
{
	const char *const mounts[] = {mount ? mount : "/sys/fs/cgroup/unified", "/sys/fs/cgroup"};

	for (size_t i = 0; i < 2; i++) {
		snprintf(made, len, "%s/clone3-repro-%d", mounts[i], (int)getpid());
		if (mkdir(made, 0755) == 0)
			return open(made, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	made[0] = 0;
	return -1;
}

int main(int argc, char **argv)
{
	struct c3_env env = {-1, 2000, 0, 0};
	struct c3_outcome out[NCASES];
	struct c3_batch_info info;
	struct c3_tree *tree;
	const char *seen[NCASES];
	char text[NCASES][32 + C3_EFFECTS_TEXT], made[256] = "";
	int err, ok = 0;

	if (NEEDS_CGROUP)
		env.cgroup_fd = scratch_cgroup(argc > 1 ? argv[1] : NULL, made, sizeof(made));
	tree = c3_tree_start(&env, sizeof(blob), NCASES, &err);
	if (!tree || (err = c3_tree_post(tree, blob, sizeof(blob), NCASES))) {
		fprintf(stderr, "cannot start the sandbox: %s\n", strerror(-err));
		return 2;
	}
	while (c3_tree_wait(tree) == -EINTR)
		;
	c3_tree_collect(tree, out, &info);
	c3_tree_free(tree);
	if (made[0])
		for (int i = 0; i < 50 && rmdir(made) && errno == EBUSY; i++)
			usleep(10000);
	for (int i = 0; i < NCASES; i++) {
		seen[i] = outcome_name(&out[i], text[i], sizeof(text[i]));
		printf("%s\n", seen[i]);
	}
	fflush(stdout);
	if (COMPARE) {
		ok = !strcmp(seen[0], seen[1]);
		if (!ok)
			fprintf(stderr, "expected the second case to give %s, as the first did\n", seen[0]);
		return !ok;
	}
	for (size_t i = 0; i < sizeof(expected) / sizeof(expected[0]); i++)
		ok |= !strcmp(seen[NCASES - 1], expected[i]);
	if (!ok)
		fprintf(stderr, "expected @expected_text@\n");
	return !ok;
}
"""


def _executor_source() -> str:
    """The executor's C files, verbatim but for the include of c3.h, which comes first."""
    parts = []
    for name in SOURCES:
        text = (C_DIR / name).read_text()
        kept = [line for line in text.splitlines() if line.strip() != '#include "c3.h"']
        parts.append(f"/* --- harness/c/{name}, verbatim " + "-" * max(4, 60 - len(name)) + " */\n" + "\n".join(kept))
    return "\n\n".join(parts)


def _errno_table() -> str:
    names = [errno.errorcode[number] for number in sorted(errno.errorcode)]
    return "\n".join("\t" + " ".join(f"E({n})" for n in names[i:i + 8]) for i in range(0, len(names), 8))


def _comment(text: str) -> str:
    return text.replace("*/", "* /")


def render(cases: Sequence[Case], expected: Sequence[str], title: str, compare: bool = False) -> str:
    """The C source that runs ``cases`` (one, or a relation's source and variant) as the
    executor does. The last case must give one of ``expected``; with ``compare``, the two
    cases must give the same outcome instead."""
    blob = encode_batch(cases)
    rows = ",".join(str(b) for b in blob)
    wrapped = "\n".join("\t" + rows[i:i + 96] for i in range(0, len(rows), 96))
    described = "\n".join(f" * case {i + 1}: {_comment(c.dumps())}" for i, c in enumerate(cases))
    want = "the same outcome for both cases" if compare else ", ".join(expected)
    head = (f"/*\n * clone3-fuzz reproducer: {_comment(title)}\n{described}\n * expected: {_comment(want)}\n"
            f" * Build and run: cc -o repro repro.c && ./repro [CGROUP_V2_MOUNT]\n"
            f" * Exit status: 0 as expected, 1 not, 2 the sandbox could not start.\n"
            f" * Below: clone3-fuzz's executor and sandbox, verbatim, then the case data and main().\n */\n"
            f"#define _GNU_SOURCE\n#define C3_REPRO 1\n#include <fcntl.h>\n#include <stdio.h>\n"
            f"#include <string.h>\n#include <sys/stat.h>\n#include <unistd.h>\n\n")
    fields = dict(blob=wrapped, ncases=len(cases), compare=int(compare),
                  cgroup=int(any(c.needs_cgroup for c in cases)),
                  expected=", ".join(f'"{e}"' for e in expected) or '""', expected_text=_comment(want),
                  errnos=_errno_table())
    main = _MAIN
    for key, value in fields.items():
        main = main.replace(f"@{key}@", str(value))
    return head + _executor_source() + "\n" + main


@dataclass(frozen=True)
class Check:
    """Whether a reproducer did what it claims on the kernel under test."""

    confirmed: bool
    reason: str
    exit_status: int | None = None
    output: str = ""
    checked: bool = True  # False where the check could not be made at all (no compiler...)


def build(source: Path) -> Path | Check:
    """Compiles ``source`` with the machine's ``cc`` beside it; the binary, or the Check
    that says why there is none."""
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        return Check(False, "no C compiler (cc) on this machine", checked=False)
    binary, log = source.parent / "repro", source.parent / "repro.build.log"
    try:
        built = exec_program(["/bin/sh", "-c", 'exec "$0" -O1 -o "$1" "$2" >"$3" 2>&1', cc, str(binary),
                              str(source), str(log)])
    except HarnessError as e:
        return Check(False, str(e), checked=False)
    if os.waitstatus_to_exitcode(built) != 0:
        return Check(False, f"does not compile: {(log.read_text(errors='replace').splitlines() or ['?'])[0]}",
                     checked=False)
    return binary


def run(binary: Path, fault: str | None, output_name: str = "repro.out") -> tuple[int, str]:
    """Runs a built reproducer (through the planted ``fault``, if any); its exit status and
    what it printed (kept beside it in ``output_name``)."""
    output = binary.parent / output_name
    argv = ["/bin/sh", "-c", 'exec "$0" >"$1" 2>&1', str(binary), str(output)]
    status = os.waitstatus_to_exitcode(exec_with_fault(argv, fault) if fault else exec_program(argv))
    return status, output.read_text(errors="replace") if output.exists() else ""


def check(source: Path, fault: str | None) -> Check:
    """Compiles ``source`` and runs it against the kernel under test (through the planted
    ``fault``, if any): a true reproducer fails there (exit 1)."""
    binary = build(source)
    if isinstance(binary, Check):
        return binary
    try:
        status, printed = run(binary, fault)
    except HarnessError as e:
        return Check(False, str(e), checked=False)
    if status == 1:
        return Check(True, "fails on the kernel under test, as the finding says", status, printed)
    if status == 0:
        return Check(False, "passes on the kernel under test: it does not reproduce", status, printed)
    return Check(False, f"exit status {status}: {printed.strip()[:200]}", status, printed, checked=False)
