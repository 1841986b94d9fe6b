"""Running the clone3-fuzz command as a user would: a subprocess in the checkout."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: The prefix that runs a command as uid 65534 with no capabilities.
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"]


def clone3_fuzz(*args: str, prefix: tuple[str, ...] = (), stdin: str = "",
                timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``clone3-fuzz ARGS``, behind ``prefix`` (setpriv, say), from the checkout."""
    return subprocess.run([*prefix, sys.executable, "-m", "clone3_fuzz", *args], input=stdin, capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)
