"""OCI/Docker seccomp profiles (Docker's ``default.json``, containers-common's
``seccomp.json``): which of their rules apply to a container of a given architecture and
capabilities, and what they do to clone3. Pure: :mod:`clone3_fuzz.runtime.seccomp`
compiles the rules with libseccomp.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Sequence

from . import abi
from .case import CaseError

#: The capabilities Docker gives a container by default (no CAP_SYS_ADMIN): the rules a
#: profile includes or excludes by capability are chosen for them.
DOCKER_CAPS = frozenset({"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
                         "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
                         "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"})
#: Linux's capabilities (capability.h, 0 to 40), the names a rule's "caps" may hold.
CAPABILITIES = frozenset(f"CAP_{name}" for name in (
    "CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP LINUX_IMMUTABLE NET_BIND_SERVICE "
    "NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT "
    "SYS_ADMIN SYS_BOOT SYS_NICE SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP "
    "MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF CHECKPOINT_RESTORE").split())
#: Docker's architecture names (a rule's includes/excludes "arches") by ``uname -m``.
ARCHES = {"x86_64": "amd64", "aarch64": "arm64", "riscv64": "riscv64", "s390x": "s390x", "ppc64le": "ppc64le"}
NAMESPACE_FLAGS = sum(abi.CLONE[name] for name in ("CLONE_NEWNS", "CLONE_NEWUTS", "CLONE_NEWIPC", "CLONE_NEWUSER",
                                                  "CLONE_NEWPID", "CLONE_NEWNET", "CLONE_NEWCGROUP"))


@dataclass(frozen=True)
class Rule:
    """One rule for one syscall: ``action`` (SCMP_ACT_...), ``errno`` for SCMP_ACT_ERRNO,
    and ``args`` as (index, op, value, value_two), all of which must hold."""

    name: str
    action: str
    errno: int | None
    args: tuple[tuple[int, str, int, int], ...] = ()


@dataclass(frozen=True)
class Profile:
    """The rules that apply, in the profile's order, and its default action."""

    default_action: str
    default_errno: int | None
    rules: tuple[Rule, ...]

    def clone3(self) -> str:
        """What clone3 gets: ``SCMP_ACT_ALLOW``, or ``errno N`` (unconditional rules only)."""
        rules = [r for r in self.rules if r.name == "clone3" and not r.args]
        action, err = (rules[0].action, rules[0].errno) if rules else (self.default_action, self.default_errno)
        return "allow" if action == "SCMP_ACT_ALLOW" else f"errno {err if err is not None else 1}"

    def clone_flags_denied(self) -> int:
        """The clone flags the profile filters clone by (its flags are argument 0): the
        mask of an allow-only-without rule (MASKED_EQ with 0, as Docker's default has for
        containers without CAP_SYS_ADMIN), or of a deny-with rule (an errno where the masked
        flags are set). clone3 takes its flags behind a pointer, where no filter can look."""
        if any(r.name == "clone" and r.action == "SCMP_ACT_ALLOW" and not r.args for r in self.rules):
            return 0
        denied = 0
        for rule in (r for r in self.rules if r.name == "clone"):
            for index, op, value, two in rule.args:
                if index != 0 or op != "SCMP_CMP_MASKED_EQ":
                    continue
                if rule.action == "SCMP_ACT_ALLOW" and two == 0:
                    denied = value if not denied else denied & value
                elif rule.action != "SCMP_ACT_ALLOW" and two:
                    denied |= two
        return denied


def _version(text: str, what: str, where: str) -> tuple[int, int]:
    """``major.minor`` of a kernel release, as moby compares minKernel (the rest ignored)."""
    match = re.match(r"(\d+)\.(\d+)", str(text))
    if not match:
        raise CaseError("seccomp", f"{what} {text!r} is not a kernel version", where)
    return int(match[1]), int(match[2])


def _applies(entry: dict[str, Any], arch: str, caps: frozenset[str], kernel: tuple[int, int], where: str) -> bool:
    """Whether a rule holds, as moby decides: excludes first, then includes; caps are
    all-of to include and any-of to exclude; minKernel compares with the kernel the
    profile is applied on (an included rule needs it at least that, an excluded one goes
    from that version on)."""
    includes, excludes = entry.get("includes") or {}, entry.get("excludes") or {}
    if excludes.get("arches") and arch in excludes["arches"]:
        return False
    if excludes.get("caps") and set(excludes["caps"]) & caps:
        return False
    if excludes.get("minKernel") and kernel >= _version(excludes["minKernel"], "excludes.minKernel", where):
        return False
    if includes.get("arches") and arch not in includes["arches"]:
        return False
    if includes.get("caps") and not set(includes["caps"]) <= caps:
        return False
    return not (includes.get("minKernel") and kernel < _version(includes["minKernel"], "includes.minKernel", where))


def load(text: str, machine: str, release: str, caps: frozenset[str] = DOCKER_CAPS, where: str = "profile") -> Profile:
    """The rules of an OCI/Docker profile that apply on ``machine`` (``uname -m``) with
    the kernel ``release`` (``uname -r``) to a container with ``caps``; raises CaseError
    naming what is wrong."""
    try:
        data = json.loads(text)
        default = data["defaultAction"]
        entries: Sequence[dict[str, Any]] = data.get("syscalls") or []
    except (ValueError, KeyError, TypeError) as e:
        raise CaseError("seccomp", f"not an OCI seccomp profile ({e})", where) from None
    arch, kernel = ARCHES.get(machine, machine), _version(release, "the kernel release", where)
    rules = []
    for entry in entries:
        if not isinstance(entry, dict) or not _applies(entry, arch, caps, kernel, where):
            continue
        names = entry.get("names") or ([entry["name"]] if "name" in entry else [])
        args = tuple((int(a["index"]), str(a["op"]), int(a["value"]), int(a.get("valueTwo") or 0))
                     for a in entry.get("args") or [])
        rules += [Rule(str(name), str(entry["action"]), entry.get("errnoRet"), args) for name in names]
    return Profile(str(default), data.get("defaultErrnoRet"), tuple(rules))
