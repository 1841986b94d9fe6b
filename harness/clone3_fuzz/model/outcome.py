"""What one call did, and what runs cases: the model's view of the runtime, so that the
verdicts can be judged without importing it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

from .case import Case
from .effects import keyed

SUCCESS = "success"
HARNESS_CRASH = "harness-crash"
HARNESS_TIMEOUT = "harness-timeout"
#: The call killed its caller: a seccomp filter's SCMP_ACT_KILL or SCMP_ACT_TRAP answer.
SIGSYS = "SIGSYS"


@dataclass(frozen=True)
class Outcome:
    """What one call did: ``observed`` is ``"success"``, an errno name such as
    ``"E2BIG"``, ``"SIGSYS"`` (a filter killed the caller), ``"harness-crash"`` or
    ``"harness-timeout"``; ``detail`` says more
    (the child's pid, the signal that killed the executor); ``effects`` is what else the
    call did, in the words of :mod:`.effects` (``"parent_tid=pid,signal=SIGCHLD"``), empty
    where it did nothing that can be seen."""

    observed: str
    detail: str = ""
    effects: str = ""

    @property
    def key(self) -> str:
        """The outcome as verdicts compare it: ``success{parent_tid=pid,signal=SIGCHLD}``,
        or the bare errno of a call that wrote nothing."""
        return keyed(self.observed, self.effects)


def base(key: str) -> str:
    """The errno (or ``success``) of an outcome key, its effects left out."""
    return key.split("{", 1)[0]


def matches(key: str, expected: str) -> bool:
    """Whether an outcome key is ``expected``: the whole key where ``expected`` names
    effects, the bare errno (or ``success``) where it does not."""
    return key == expected if "{" in expected else base(key) == expected


class Runner(Protocol):
    """Anything that runs cases for real: :class:`clone3_fuzz.runtime.sandbox.Sandbox`."""

    def run(self, cases: Sequence[Case]) -> list[Outcome]:
        """One outcome per case, in order."""
        ...
