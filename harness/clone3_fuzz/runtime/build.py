"""cffi build script for the executor (API mode, out of line).

The C side lives in ``c/``. Python's view of it, the cdef, is read from ``c/c3.h`` itself
(as PyNaCl's build reads its headers): comments and preprocessor lines are dropped, and
every ``#define C3_...`` becomes ``#define C3_... ...`` (and an array sized by one,
``[...]``), so its value comes from the C compiler alone. The header is the one statement of the contract.
"""

from __future__ import annotations

import os
import re

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
C_DIR = os.path.join(HERE, "c")
SOURCES = ("executor.c", "sandbox.c", "faults.c")


def cdef_from(header: str) -> str:
    """The declarations of a C header as cffi's cdef takes them."""
    text = re.sub(r"/\*.*?\*/", " ", header, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    lines = []
    for line in text.splitlines():
        define = re.match(r"\s*#define\s+(C3_\w+)\s+\S", line)
        if define and '"' in line:
            continue  # a string: for the C side and the model (constants.py), not for cffi
        if define:
            lines.append(f"#define {define[1]} ...")
        elif not line.lstrip().startswith(("#", "_Static_assert")):
            lines.append(re.sub(r"\[C3_\w+\]", "[...]", line))  # an array sized by a macro
    return "\n".join(lines)


def _relative(path: str) -> str:
    """setuptools wants source paths relative to the project (where setup.py is)."""
    return os.path.relpath(path)


with open(os.path.join(C_DIR, "c3.h")) as f:
    CDEF = cdef_from(f.read())

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source(
    "clone3_fuzz.runtime._executor",
    '#include "c3.h"',
    sources=[_relative(os.path.join(C_DIR, name)) for name in SOURCES],
    include_dirs=[_relative(C_DIR)],
    extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
