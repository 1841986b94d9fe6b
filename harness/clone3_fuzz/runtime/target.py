"""Targets: what runs the cases when it is not this machine's kernel as it is. A target is
described as plain data (so that a campaign's workers get the same one):

- ``{"wrapper": ["qemu-x86_64", "{exe}"]}``: the static executor program under any command
  (an emulator, valgrind, gVisor's runsc, bubblewrap, a container);
- ``{"kernel_image": ..., "initrd": ..., "qemu_args": [...]}``: another kernel in a VM.

:func:`start` starts one; :func:`classify` says in one line what its clone3 is.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..exit_status import HarnessError
from ..model.measurement import Measurement
from .program import Program
from .vm import VM

#: Wrappers that run the executor under themselves, and how the executor then sees them
#: (its greeting's "emulator"): a wrapper that execs a shell first leaves the executor
#: running natively, the classic trap with valgrind.
EMULATORS = {"valgrind": "valgrind", "qemu-": "QEMU"}


def describe(spec: Mapping[str, Any]) -> str:
    """The target in a few words, for reports and titles."""
    if "kernel_image" in spec:
        return f"the kernel {spec['kernel_image']} in a VM"
    return " ".join(spec["wrapper"])


def start(spec: Mapping[str, Any], workdir: str, fault: str | None = None) -> Program:
    """The target's runner, up and greeted: a VM booted, or the program started under its
    wrapper (its stderr kept in ``workdir/target.log``). Raises HarnessError in one line
    where the wrapper names no ``{exe}``, or did not run the executor under itself."""
    if "kernel_image" in spec:
        return VM(spec["kernel_image"], spec.get("initrd"), spec.get("qemu_args", []), workdir=workdir, fault=fault)
    wrapper: Sequence[str] = spec["wrapper"]
    if not any("{exe}" in part for part in wrapper):
        raise HarnessError(f"--target: {' '.join(wrapper)!r} does not name {{exe}}, the executor it is to run")
    os.makedirs(workdir, exist_ok=True)
    runner = Program(wrapper, fault=fault, log=Path(workdir) / "target.log")
    for tool, seen in EMULATORS.items():
        named = [part for part in wrapper if os.path.basename(part).startswith(tool)]
        if named and seen not in runner.hello["emulator"]:
            runner.close()
            raise HarnessError(f"--target: {named[0]} did not run the executor under itself (the executor saw "
                               f"{runner.hello['emulator'] or 'no emulator'}): is a shell in between?")
    return runner


def classify(measured: Measurement, refused: Sequence[str] = ()) -> str:
    """What the target's clone3 is, in one line: ENOSYS for every call (the fallback path),
    another errno for every call (blocked: callers break), refused for some calls only
    (``refused``: the errnos a target gave where the kernel would not), or a real clone3
    with its struct size."""
    if measured.clone3 != "available":
        return f"{measured.clone3} for every call"
    if refused:
        return f"partial: a clone3 with a {measured.struct_size}-byte struct, refusing some calls ({', '.join(refused)})"
    return f"a real clone3 with a {measured.struct_size}-byte struct"
