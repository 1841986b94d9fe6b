"""Exit statuses, the same for every command, and the errors that lead to them."""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    """What a clone3-fuzz process says when it ends."""

    AGREE = 0  # the work ran and everything agreed
    DISAGREE = 1  # an outcome disagreed with the oracle or a relation (a finding)
    HARNESS = 2  # bad input, a bad option, or the harness itself failed: nothing judged
    UNAVAILABLE = 3  # clone3 is not there to judge (ENOSYS, perhaps from a seccomp filter)
    INTERRUPTED = 130  # ^C, SIGTERM or SIGHUP: what was done so far is kept


#: ``ci --ktap`` exits as a kselftest does (tools/testing/selftests/kselftest.h): KSFT_PASS 0,
#: KSFT_FAIL 1 (a harness failure too: nothing was judged), KSFT_SKIP 4 (no clone3).
KSELFTEST = {ExitStatus.AGREE: 0, ExitStatus.DISAGREE: 1, ExitStatus.HARNESS: 1, ExitStatus.UNAVAILABLE: 4}

#: For every --help: what each status means.
EPILOG = "exit status: " + "; ".join(f"{s.value} {s.name.lower()}" for s in ExitStatus)


class HarnessError(RuntimeError):
    """The harness itself, or its input, failed (not the kernel under test); the message
    is one line naming the culprit."""
