"""The machine a finding was seen on, as syzbot gives it: enough for a kernel developer to
rebuild the conditions from a mail. Read once per process; nothing here judges anything.
"""

from __future__ import annotations

import functools
import gzip
import os
import platform
import re
import shutil
import tempfile
from typing import Any

from ..exit_status import HarnessError
from ..runtime.sandbox import exec_program

#: The kernel options that decide a clone3 outcome somewhere in the oracle.
CONFIG_PATTERN = re.compile(r"^(# )?CONFIG_(USER_NS|PID_NS|UTS_NS|IPC_NS|NET_NS|TIME_NS|CGROUPS|CGROUP_PIDS|"
                            r"CHECKPOINT_RESTORE|SECCOMP|SECCOMP_FILTER|X86_5LEVEL|ARM64_VA_BITS|PGTABLE_LEVELS|"
                            r"ADDRESS_MASKING|PAGE_SIZE_[0-9A-Z]+|ARM64_[0-9]+K_PAGES|SECURITY_YAMA|"
                            r"HAVE_ARCH_USERFAULTFD_MINOR)[= ]")


def _config_lines() -> list[str]:
    for path in ("/proc/config.gz", f"/boot/config-{os.uname().release}"):
        try:
            opener = gzip.open if path.endswith(".gz") else open
            with opener(path, "rt") as f:  # type: ignore[operator]
                return [line.strip() for line in f if CONFIG_PATTERN.match(line)]
        except OSError:
            continue
    return []


def _compiler() -> str:
    """The first line of ``cc --version``, run from C (see sandbox.exec_program)."""
    cc = shutil.which("cc")
    if cc is None:
        return "none"
    with tempfile.NamedTemporaryFile("r") as out:
        try:
            exec_program(["/bin/sh", "-c", 'exec "$0" --version >"$1" 2>&1', cc, out.name])
        except HarnessError:
            return "unknown"
        return (out.read().splitlines() or ["unknown"])[0]


@functools.lru_cache(maxsize=1)
def describe() -> dict[str, Any]:
    """``uname -r -v -m``, the relevant CONFIG_ lines (where /proc/config.gz or /boot has
    them), the C compiler and the libc."""
    uname = os.uname()
    libc, version = platform.libc_ver()
    return {"uname": f"{uname.release} {uname.version} {uname.machine}", "config": _config_lines(),
            "compiler": _compiler(), "libc": f"{libc} {version}".strip() or "unknown"}
