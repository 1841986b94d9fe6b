"""Another kernel, in a VM: its image booted under qemu-system with an initramfs whose only
program is the static executor (:mod:`.program`), which speaks the protocol on the second
serial port. The first is the kernel's console, kept in a log beside the report.

KVM is used where it works, TCG otherwise. Whether it works is found out, not assumed:
``/dev/kvm`` may be there and still hang a stock kernel (a PVM module), so a boot under KVM
that does not greet in time is retried under TCG, and the report says which ran.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any, Sequence

from ..exit_status import HarnessError
from ..model.measurement import Machine, Privilege
from .program import Program, program

QEMU = "qemu-system-x86_64"
KVM_GREETING_S = 30  # a KVM boot that has not greeted by then is taken as hung
TCG_GREETING_S = 180  # TCG boots a distribution kernel in 4-6 s here; a slow machine gets room


def _cpio_entry(name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)) -> bytes:
    """One "newc" cpio record (the format the kernel unpacks an initramfs from)."""
    fields = [0, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(name) + 1, 0]
    head = b"070701" + b"".join(f"{f:08x}".encode() for f in fields) + name.encode() + b"\0"
    head += b"\0" * (-len(head) % 4)
    return head + data + b"\0" * (-len(data) % 4)


def initramfs(executor: Path) -> bytes:
    """An uncompressed initramfs: /init is the executor; /dev/console lets the kernel give
    it the console before it mounts devtmpfs."""
    entries = [
        _cpio_entry("dev", stat.S_IFDIR | 0o755),
        _cpio_entry("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1)),
        _cpio_entry("proc", stat.S_IFDIR | 0o755),
        _cpio_entry("sys", stat.S_IFDIR | 0o755),
        _cpio_entry("init", stat.S_IFREG | 0o755, executor.read_bytes()),
    ]
    return b"".join(entries) + _cpio_entry("TRAILER!!!", 0)


def kvm_usable() -> bool:
    """Whether to try KVM first: /dev/kvm opens. (It may still hang: see the module doc.)"""
    try:
        os.close(os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC))
        return True
    except OSError:
        return False


def address_bits() -> int:
    """The host's user address width, which the guest's CPU model must keep: qemu's -cpu max
    would add 5-level paging, moving the stack and TLS limits."""
    from .probe import address_bits as measure

    return measure(os.uname().machine) or 47


class VM(Program):
    """A :class:`Program` inside a VM booting ``image``: ``accel`` says what ran it (kvm or
    tcg); ``console`` is the kernel's console log."""

    def __init__(self, image: str, initrd: str | None = None, qemu_args: Sequence[str] = (), workdir: str | None = None,
                 fault: str | None = None) -> None:
        if shutil.which(QEMU) is None:
            raise HarnessError(f"--kernel-image: {QEMU} is not installed (Debian: qemu-system-x86)")
        if not os.path.isfile(image):
            raise HarnessError(f"--kernel-image: {image}: no such file")
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="clone3-fuzz-vm-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.initrd = Path(initrd) if initrd else self.workdir / "initramfs.cpio"
        if not initrd:
            self.initrd.write_bytes(initramfs(program()))
        self.image, self.console = image, self.workdir / "console.log"
        failures = []
        for accel in (["kvm"] if kvm_usable() else []) + ["tcg"]:
            try:
                super().__init__(self._argv(image, accel, qemu_args), fault=fault,
                                 greeting_s=KVM_GREETING_S if accel == "kvm" else TCG_GREETING_S,
                                 log=self.workdir / f"qemu-{accel}.log")
                self.accel = accel
                return
            except HarnessError as e:
                failures.append(f"{accel}: {e}")
        logs = [self.console, *sorted(self.workdir.glob("qemu-*.log"))]
        tail = [line for log in logs if log.exists() for line in log.read_text(errors="replace").strip().splitlines()][-1:]
        raise HarnessError(f"--kernel-image: {image} did not boot to the executor ({'; '.join(failures)})"
                           + (f"; its console's last line: {tail[0][:160]}" if tail else ""))

    def describe(self) -> dict[str, Any]:
        """What ran the kernel under test, for a report."""
        return {"kind": "vm", "image": self.image, "accel": self.accel, "release": self.hello["release"],
                "build": self.hello["build"], "console": str(self.console)}

    def facts(self) -> tuple[dict[str, Any], Privilege, Machine, int | None]:
        """As the program greeted (:meth:`Program.facts`), from the initramfs's init: in the
        initial namespaces, so every pid level is known, with cgroup2 mounted (but no cgroup
        of ours to spawn into)."""
        base, privilege, machine, bits = super().facts()
        return (base, dataclasses.replace(privilege, cgroup2="/sys/fs/cgroup"),
                dataclasses.replace(machine, outer_levels_known=True), bits)

    def _argv(self, image: str, accel: str, extra: Sequence[str]) -> list[str]:
        cpu = "host" if accel == "kvm" else "max" + (",la57=off" if address_bits() < 56 else "")
        return [QEMU, "-accel", accel, "-cpu", cpu, "-m", "1024", "-smp", "1", "-nodefaults", "-no-reboot",
                "-display", "none", "-kernel", image, "-initrd", str(self.initrd),
                "-append", "console=ttyS0 panic=-1 quiet c3.port=/dev/ttyS1",
                "-serial", f"file:{self.console}", "-serial", "stdio", *extra]
