"""What one call did, and what runs cases: the model's view of the runtime, so that the
verdicts can be judged without importing it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

from .case import Case

SUCCESS = "success"
HARNESS_CRASH = "harness-crash"
HARNESS_TIMEOUT = "harness-timeout"


@dataclass(frozen=True)
class Outcome:
    """What one call did: ``observed`` is ``"success"``, an errno name such as
    ``"E2BIG"``, ``"harness-crash"`` or ``"harness-timeout"``; ``detail`` says more
    (the child's pid, the signal that killed the executor)."""

    observed: str
    detail: str = ""


class Runner(Protocol):
    """Anything that runs cases for real: :class:`clone3_fuzz.runtime.sandbox.Sandbox`."""

    def run(self, cases: Sequence[Case]) -> list[Outcome]:
        """One outcome per case, in order."""
        ...
