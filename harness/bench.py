"""How fast the executor runs cases, next to the bare syscall measured in the same run.

Absolute rates mean little on a shared machine; the ratios do. For each kind of case:
the baseline (a C loop calling clone3, in a process of the executor's shape), the
encoding of the batch (Python), the executor's batch (C, process tree included) and the
decoding of its outcomes (Python).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ._executor import ffi, lib
from .case import Case, parse
from .executor import decode_outcome, encode_batch
from .sandbox import HarnessError, run_blob

#: kind -> (case, whether it succeeds, so that the baseline must reap a child)
KINDS: dict[str, tuple[dict[str, Any], bool]] = {
    "rejected-size": ({"size": 4097}, False),
    "rejected-tail": ({"size": 96, "tail": {"88": 1}}, False),
    "rejected-detached": ({"size": 88, "flags": "CLONE_DETACHED"}, False),
    "success": ({"size": 88, "exit_signal": "SIGCHLD"}, True),
}
TARGETS = {"rejected": 0.5, "success": 0.8}


@dataclass(frozen=True)
class Measure:
    kind: str
    cases: int
    raw_rate: float  # baseline calls per second
    encode_rate: float  # cases encoded per second
    batch_rate: float  # cases per second through the sandboxed executor
    decode_rate: float  # outcomes decoded per second

    @property
    def ratio(self) -> float:
        return self.batch_rate / self.raw_rate

    @property
    def target(self) -> float:
        return TARGETS["success" if self.kind == "success" else "rejected"]


def _timed(fn: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def measure(kind: str, count: int) -> Measure:
    spec, reap = KINDS[kind]
    case: Case = parse(spec)
    image = ffi.from_buffer(bytearray(case.image().ljust(8192, b"\0")))
    raw_ns = lib.c3_baseline(image, case.size, count, int(reap))
    if raw_ns < 0:
        raise HarnessError(f"bench: the baseline process failed (errno {-raw_ns})")
    blob, encode_s = _timed(lambda: encode_batch([case] * count))
    out = ffi.new("struct c3_outcome[]", count)
    info = ffi.new("struct c3_batch_info *")
    _, batch_s = _timed(lambda: run_blob(blob, out, info))
    if info.error or info.done != count:
        raise HarnessError(f"bench: the {kind} batch did not complete (errno {info.error})")
    outcomes, decode_s = _timed(lambda: [decode_outcome(out[i]) for i in range(count)])
    expected = "success" if reap else None
    if reap and any(o is None or o.observed != expected for o in outcomes):
        raise HarnessError(f"bench: {kind} cases did not all succeed")
    return Measure(kind, count, count / (raw_ns / 1e9), count / encode_s, count / batch_s, count / decode_s)


def run(scale: float = 1.0) -> list[Measure]:
    """Every kind; ``scale`` multiplies the case counts (200,000 rejected, 2,000 successful)."""
    return [measure(kind, max(1, int(scale * (2000 if reap else 200_000)))) for kind, (_, reap) in KINDS.items()]
