"""Targets: what runs the cases when it is not this machine's kernel as it is. A target is
described as plain data (so that a campaign's workers get the same one):

- ``{"wrapper": ["qemu-x86_64", "{exe}"]}``: the static executor program under any command
  (an emulator, valgrind, gVisor's runsc, bubblewrap, a container);
- ``{"kernel_image": ..., "initrd": ..., "qemu_args": [...]}``: another kernel in a VM;
- ``{"seccomp_profile": FILE, "caps": [...], "runc": bool}``: this kernel behind an
  OCI/Docker seccomp profile, as a container with those capabilities (Docker's default
  set where there is no "caps") has it (:mod:`..model.seccomp`), with runc's ENOSYS stub
  or without it (:func:`.seccomp.compile_bpf`).

:func:`start` starts one; :func:`classify` says in one line what its clone3 is.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..exit_status import HarnessError
from ..model import abi, seccomp
from ..model.case import CaseError, parse
from ..model.measurement import Measurement
from .probe import consequence
from .program import Program
from .seccomp import compile_bpf
from .vm import VM

#: Wrappers that run the executor under themselves, and how the executor then sees them
#: (its greeting's "emulator"): a wrapper that execs a shell first leaves the executor
#: running natively, the classic trap with valgrind.
EMULATORS = {"valgrind": "valgrind", "qemu-": "QEMU"}


def describe(spec: Mapping[str, Any]) -> str:
    """The target in a few words, for reports and titles."""
    if "kernel_image" in spec:
        return f"the kernel {spec['kernel_image']} in a VM"
    if "seccomp_profile" in spec:
        caps = frozenset(spec.get("caps", seccomp.DOCKER_CAPS))
        changes = [f"+{c}" for c in sorted(caps - seccomp.DOCKER_CAPS)] + [f"-{c}" for c in sorted(seccomp.DOCKER_CAPS - caps)]
        changes += ["as runc applies it"] if spec.get("runc") else []
        return f"the seccomp profile {spec['seccomp_profile']}" + (f" ({', '.join(changes)})" if changes else "")
    return " ".join(spec["wrapper"])


def start(spec: Mapping[str, Any], workdir: str, fault: str | None = None) -> Program:
    """The target's runner, up and greeted: a VM booted, or the program started under its
    wrapper (its stderr kept in ``workdir/target.log``). Raises HarnessError in one line
    where the wrapper names no ``{exe}``, or did not run the executor under itself."""
    if "kernel_image" in spec:
        return VM(spec["kernel_image"], spec.get("initrd"), spec.get("qemu_args", []), workdir=workdir, fault=fault)
    if "seccomp_profile" in spec:
        return Filtered(spec["seccomp_profile"], workdir, frozenset(spec.get("caps", seccomp.DOCKER_CAPS)),
                        bool(spec.get("runc")), fault)
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


class Filtered(Program):
    """The executor program behind a seccomp profile, compiled with libseccomp and loaded
    by the program itself before its first answer."""

    def __init__(self, path: str, workdir: str, caps: frozenset[str] = seccomp.DOCKER_CAPS, runc: bool = False,
                 fault: str | None = None) -> None:
        try:
            text = Path(path).read_text()
        except OSError as e:
            raise HarnessError(f"--seccomp-profile: {path}: {e.strerror}") from None
        try:
            self.profile = seccomp.load(text, os.uname().machine, os.uname().release, caps, where=path)
        except CaseError as e:
            raise HarnessError(f"--seccomp-profile: {e}") from None
        os.makedirs(workdir, exist_ok=True)
        bpf = Path(workdir) / "filter.bpf"
        bpf.write_bytes(compile_bpf(self.profile, runc))
        super().__init__(["{exe}", "--seccomp-bpf", str(bpf)], fault=fault, log=Path(workdir) / "target.log",
                         name=describe({"seccomp_profile": path, "caps": caps, "runc": runc}))

    def bypass(self) -> dict[str, Any] | None:
        """Where the profile filters clone by its namespace flags but lets clone3 through,
        whose flags it cannot see: the flags clone3 then creates namespaces with, for real."""
        denied = self.profile.clone_flags_denied() & seccomp.NAMESPACE_FLAGS
        if not denied or self.profile.clone3() != "allow":
            return None
        flags = [name for name in abi.flag_names(denied) if name.startswith("CLONE_NEW")]
        outcomes = self.run([parse({"size": abi.STRUCT_SIZE, "flags": name}) for name in flags])
        through = [name for name, outcome in zip(flags, outcomes) if outcome.observed == "success"]
        return {"clone_denies": flags, "clone3_lets_through": through} if through else None


def classify(measured: Measurement, refused: Sequence[str] = ()) -> str:
    """What the target's clone3 is, in one line: ENOSYS for every call (the fallback path),
    another errno for every call (blocked: callers break), refused for some calls only
    (``refused``: the errnos a target gave where the kernel would not), or a real clone3
    with its struct size."""
    if measured.clone3 != "available":
        return f"{measured.clone3} for every call"
    struct = f"a {measured.struct_size}-byte struct" if measured.struct_size else "a struct of unmeasured size"
    if refused:
        return (f"partial: a clone3 with {struct}, refusing some calls ({', '.join(refused)}); where it refuses, "
                + "; ".join(consequence(errno) for errno in refused))
    return f"a real clone3 with {struct}"
