"""The numbers the model shares with the C executor, read from ``runtime/c/c3.h`` itself:
the header is their one source, and the model stays pure Python (no compiled module is
loaded to learn them)."""

from __future__ import annotations

import re
from pathlib import Path

HEADER = Path(__file__).resolve().parent.parent / "runtime" / "c" / "c3.h"
_DEFINE = re.compile(r"^#define\s+(C3_\w+)\s+(\(?\s*-?(?:0x[0-9a-fA-F]+|\d+)(?:ULL)?(?:\s*<<\s*\d+)?\s*\)?)", re.M)


def _value(text: str) -> int:
    parts = text.strip("() ").replace("ULL", "").split("<<")
    value = int(parts[0].strip(), 0)
    return value << int(parts[1]) if len(parts) == 2 else value


def read(header: Path = HEADER) -> dict[str, int]:
    """Every ``#define C3_NAME <integer>`` of the header (``1ULL << 8`` and ``(-1)`` included)."""
    return {name: _value(value) for name, value in _DEFINE.findall(header.read_text())}


def read_strings(header: Path = HEADER) -> dict[str, str]:
    """Every ``#define C3_NAME "text"`` of the header."""
    return dict(re.findall(r'^#define\s+(C3_\w+)\s+"([^"]*)"', header.read_text(), re.M))


C = read()
#: Signals 1..31 by name, without "SIG", as the executor names them.
SIGNAL_NAMES = tuple(read_strings()["C3_SIGNAL_NAMES"].split())
