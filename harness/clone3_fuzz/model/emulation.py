"""Another kernel's clone3 for a running program (``clone3-fuzz exec``): what one call is
answered with, decided by the oracle for the named version, or forced (``--clone3 eperm``).

A call the version would accept goes on to the real kernel: an emulated kernel cannot grant
what this one lacks, and the real answer (a pid, the effects) is the real kernel's to give.
Where the oracle allows several outcomes and success is among them (a literal pointer that
may be mapped, a pid that may be free), the call goes on too. Otherwise the call fails with
the first outcome the oracle predicts, as that kernel's first failing check would.
"""

from __future__ import annotations

from dataclasses import dataclass

from .case import Case
from .oracle import SUCCESS, predict
from .outcome import base
from .profile import Profile


@dataclass(frozen=True)
class Answer:
    """``errno`` to fail the call with (a name), or None to let the real kernel take it;
    the oracle's ``rule``; whether the answer is ``emulated`` (not the real kernel's)."""

    errno: str | None
    rule: str
    emulated: bool


def as_version(case: Case, profile: Profile) -> Answer:
    """The answer of ``profile``'s kernel to ``case`` (see the module's docstring)."""
    prediction = predict(case, profile)
    successes = [key for key in prediction.rules if base(key) == SUCCESS]
    if successes:
        return Answer(None, prediction.rules[successes[0]], False)
    first = next(iter(prediction.rules))
    return Answer(base(first), prediction.rules[first], True)


def forced(errno: str) -> Answer:
    """Every call fails with ``errno``, as a container profile makes it (ENOSYS: glibc's
    fallback path; EPERM: the profiles that broke it)."""
    return Answer(errno, "entry.unavailable" if errno == "ENOSYS" else "entry.blocked", True)
