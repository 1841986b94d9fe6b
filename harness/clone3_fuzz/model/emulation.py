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
    the oracle's ``rule``; whether the answer is ``emulated`` (not the real kernel's);
    ``note``: what the log should say besides (a grant this kernel cannot make)."""

    errno: str | None
    rule: str
    emulated: bool
    note: str = ""


def _first_error(profile: Profile, case: Case) -> tuple[str, str] | None:
    """The first error ``profile``'s kernel gives ``case``, or None where it may succeed."""
    prediction = predict(case, profile)
    if any(base(key) == SUCCESS for key in prediction.rules):
        return None
    first = next(iter(prediction.rules))
    return base(first), prediction.rules[first]


def as_version(case: Case, profile: Profile, running: Profile | None = None) -> Answer:
    """The answer of ``profile``'s kernel to ``case`` (see the module's docstring). With
    ``running`` (this kernel), a call the version accepts and this kernel refuses says so:
    an emulated newer kernel cannot grant what this one lacks."""
    refused = _first_error(profile, case)
    if refused is not None:
        return Answer(refused[0], refused[1], True)
    here = _first_error(running, case) if running is not None else None
    note = f"{profile.release} takes it, but this kernel refuses it: {here[0]} ({here[1]})" if here else ""
    return Answer(None, "success", False, note)


def forced(errno: str) -> Answer:
    """Every call fails with ``errno``, as a container profile makes it (ENOSYS: glibc's
    fallback path; EPERM: the profiles that broke it)."""
    return Answer(errno, "entry.unavailable" if errno == "ENOSYS" else "entry.blocked", True)
