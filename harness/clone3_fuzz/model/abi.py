"""The clone3 ABI: ``struct clone_args``, its sizes and its flags, as uapi defines them.

Facts only, no policy: which flags a kernel accepts, and in which order it checks them,
is the oracle's business. Sources: ``include/uapi/linux/sched.h`` and
``kernel/fork.c`` (see ``../shared/reference/clone3-kernel-checks.md``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Mapping

Version = tuple[int, int]

#: The fields of ``struct clone_args``, in order; each is an ``__aligned_u64``.
FIELDS: tuple[str, ...] = (
    "flags",
    "pidfd",
    "child_tid",
    "parent_tid",
    "exit_signal",
    "stack",
    "stack_size",
    "tls",
    "set_tid",
    "set_tid_size",
    "cgroup",
)
OFFSETS: dict[str, int] = {name: 8 * i for i, name in enumerate(FIELDS)}
#: The kernel version that added each field (and with it, grew the struct).
FIELD_SINCE: dict[str, Version] = {
    **{name: (5, 3) for name in FIELDS[:8]},
    "set_tid": (5, 5),
    "set_tid_size": (5, 5),
    "cgroup": (5, 7),
}
#: Fields that hold user addresses (``tls`` is the new thread's TLS base).
POINTER_FIELDS: frozenset[str] = frozenset({"pidfd", "child_tid", "parent_tid", "stack", "tls", "set_tid"})

CLONE_ARGS_SIZE_VER0 = 64  # 5.3
CLONE_ARGS_SIZE_VER1 = 80  # 5.5: set_tid, set_tid_size
CLONE_ARGS_SIZE_VER2 = 88  # 5.7: cgroup
#: sizeof(struct clone_args) in the newest kernel (there is no VER3 in mainline).
STRUCT_SIZE = CLONE_ARGS_SIZE_VER2
VERSION_SIZES: tuple[tuple[Version, int], ...] = (
    ((5, 3), CLONE_ARGS_SIZE_VER0),
    ((5, 5), CLONE_ARGS_SIZE_VER1),
    ((5, 7), CLONE_ARGS_SIZE_VER2),
)

U64_MAX = (1 << 64) - 1
CSIGNAL = 0xFF
MAX_PID_NS_LEVEL = 32


@dataclass(frozen=True)
class Flag:
    """One ``CLONE_*`` bit.

    ``introduced`` is the release that defined the flag; ``clone3`` is the first release
    whose clone3 accepts it, or None where clone3 rejects it on every kernel.
    """

    name: str
    value: int
    introduced: Version
    clone3: Version | None


_CLONE3 = (5, 3)
FLAGS: tuple[Flag, ...] = (
    Flag("CLONE_NEWTIME", 0x00000080, (5, 6), (6, 3)),  # inside CSIGNAL; a402f1e35313
    Flag("CLONE_VM", 0x00000100, (2, 0), _CLONE3),
    Flag("CLONE_FS", 0x00000200, (2, 0), _CLONE3),
    Flag("CLONE_FILES", 0x00000400, (2, 0), _CLONE3),
    Flag("CLONE_SIGHAND", 0x00000800, (2, 0), _CLONE3),
    Flag("CLONE_PIDFD", 0x00001000, (5, 2), _CLONE3),
    Flag("CLONE_PTRACE", 0x00002000, (2, 2), _CLONE3),
    Flag("CLONE_VFORK", 0x00004000, (2, 2), _CLONE3),
    Flag("CLONE_PARENT", 0x00008000, (2, 3), _CLONE3),
    Flag("CLONE_THREAD", 0x00010000, (2, 4), _CLONE3),
    Flag("CLONE_NEWNS", 0x00020000, (2, 4), _CLONE3),
    Flag("CLONE_SYSVSEM", 0x00040000, (2, 5), _CLONE3),
    Flag("CLONE_SETTLS", 0x00080000, (2, 5), _CLONE3),
    Flag("CLONE_PARENT_SETTID", 0x00100000, (2, 5), _CLONE3),
    Flag("CLONE_CHILD_CLEARTID", 0x00200000, (2, 5), _CLONE3),
    Flag("CLONE_DETACHED", 0x00400000, (2, 5), None),  # deprecated: EINVAL in clone3
    Flag("CLONE_UNTRACED", 0x00800000, (2, 5), _CLONE3),
    Flag("CLONE_CHILD_SETTID", 0x01000000, (2, 5), _CLONE3),
    Flag("CLONE_NEWCGROUP", 0x02000000, (4, 6), _CLONE3),
    Flag("CLONE_NEWUTS", 0x04000000, (2, 6), _CLONE3),
    Flag("CLONE_NEWIPC", 0x08000000, (2, 6), _CLONE3),
    Flag("CLONE_NEWUSER", 0x10000000, (3, 8), _CLONE3),
    Flag("CLONE_NEWPID", 0x20000000, (2, 6), _CLONE3),
    Flag("CLONE_NEWNET", 0x40000000, (2, 6), _CLONE3),
    Flag("CLONE_IO", 0x80000000, (2, 6), _CLONE3),
    Flag("CLONE_CLEAR_SIGHAND", 1 << 32, (5, 5), (5, 5)),
    Flag("CLONE_INTO_CGROUP", 1 << 33, (5, 7), (5, 7)),
    Flag("CLONE_AUTOREAP", 1 << 34, (7, 1), (7, 1)),
    Flag("CLONE_NNP", 1 << 35, (7, 1), (7, 1)),
    Flag("CLONE_PIDFD_AUTOKILL", 1 << 36, (7, 1), (7, 1)),
    Flag("CLONE_EMPTY_MNTNS", 1 << 37, (7, 1), (7, 1)),
)
FLAG_BY_NAME: dict[str, Flag] = {f.name: f for f in FLAGS}
FLAG_BY_VALUE: dict[int, Flag] = {f.value: f for f in FLAGS}
CLONE = {f.name: f.value for f in FLAGS}
#: The bits below 32 that legacy clone() took, the CSIGNAL byte included.
CLONE_LEGACY_FLAGS = 0xFFFFFFFF


def flag_names(flags: int) -> list[str]:
    """Names for the set bits of ``flags``, low bits first; unnamed bits as ``0x...``."""
    names = []
    for bit in range(64):
        value = 1 << bit
        if flags & value:
            flag = FLAG_BY_VALUE.get(value)
            names.append(flag.name if flag else hex(value))
    return names


def parse_flags(text: str) -> int:
    """The inverse of ``"|".join(flag_names(x))``: names or integers joined by ``|``."""
    value = 0
    for part in (p.strip() for p in text.split("|")):
        if part in FLAG_BY_NAME:
            value |= FLAG_BY_NAME[part].value
        else:
            try:
                value |= int(part, 0)
            except ValueError:
                raise ValueError(f"unknown flag {part!r}") from None
    return value


def encode(fields: Mapping[str, int], tail: Mapping[int, int] | None = None, length: int = STRUCT_SIZE) -> bytes:
    """The bytes of a ``struct clone_args`` (native byte order), ``length`` long.

    ``length`` may cut the struct short (a field that straddles it keeps its low-order
    bytes on a little-endian machine, as the kernel would copy them) or extend it with
    zeros and ``tail`` bytes (offset -> byte, offsets past the struct).
    """
    head = struct.pack("=11Q", *(fields.get(name, 0) & U64_MAX for name in FIELDS))
    buf = bytearray(head[:length].ljust(length, b"\0"))
    for offset, byte in (tail or {}).items():
        if offset < STRUCT_SIZE:
            raise ValueError(f"tail offset {offset} lies inside the struct")
        if offset < length:
            buf[offset] = byte
    return bytes(buf)


def decode(buf: bytes) -> dict[str, int]:
    """Field values as a kernel with the full struct reads ``buf``: missing bytes are zero."""
    head = bytes(buf[:STRUCT_SIZE]).ljust(STRUCT_SIZE, b"\0")
    return dict(zip(FIELDS, struct.unpack("=11Q", head)))
