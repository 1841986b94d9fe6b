"""The layering rule, checked: the model is pure Python, imports only go down the layers,
and the numbers shared with C come from the C header alone."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from clone3_fuzz.model import abi, constants

PACKAGE = Path(__file__).resolve().parents[2] / "harness" / "clone3_fuzz"
LAYERS = ["model", "runtime", "campaign", "outputs"]  # each may import only those before it
#: Modules of the upper layers that are pure too, and unit-tested as such.
PURE_ELSEWHERE = ["campaign.decode", "campaign.strategies", "campaign.finding", "campaign.minimize",
                  "campaign.corpus", "campaign.triage", "strategies"]


def test_the_model_loads_no_compiled_module() -> None:
    modules = [f"clone3_fuzz.model.{p.stem}" for p in (PACKAGE / "model").glob("*.py") if p.stem != "__init__"]
    modules += [f"clone3_fuzz.{m}" for m in PURE_ELSEWHERE]
    probe = ("import importlib, sys\n"
             f"for name in {modules!r}: importlib.import_module(name)\n"
             "bad = sorted(m for m, mod in sys.modules.items()\n"
             "             if m.startswith('clone3_fuzz.runtime') or m == '_cffi_backend' or m.endswith('_executor'))\n"
             "print(bad)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def _imported_layers(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            parts = (node.module or "").split(".")
            if node.level == 2 and parts[0] in LAYERS:
                found.add(parts[0])
    return found


def test_imports_only_go_down_the_layers() -> None:
    for rank, layer in enumerate(LAYERS):
        for path in (PACKAGE / layer).glob("*.py"):
            upward = _imported_layers(path) - set(LAYERS[:rank])
            assert not upward, f"{path.name} ({layer}) imports {upward}"


def test_no_c_constant_is_written_again_in_python() -> None:
    """A constant of c3.h named again in Python (MAX_IMAGE = 65536), or one of its
    distinctive values as a literal, would drift from the header."""
    # The CLONE bits are uapi values that abi.py states for the model (checked against the
    # header below); 4096 is also the page size.
    own = {name: value for name, value in constants.C.items() if not name.startswith(("C3_CLONE_", "C3_CSIGNAL"))}
    names = {name.removeprefix("C3_") for name in own}
    distinctive = {value for value in own.values() if value >= 1024 and value != 4096}
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, int):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        assert target.id.lstrip("_") not in names, f"{path.name}:{node.lineno}: {target.id} repeats c3.h"
            # abi.py's flag table is uapi's: CLONE_VFORK is 16384 whatever a scratch slot is.
            if isinstance(node, ast.Constant) and type(node.value) is int and path.name != "abi.py":
                assert node.value not in distinctive, f"{path.name}:{node.lineno}: {node.value} is a c3.h value"


def test_the_header_is_read_whole() -> None:
    assert constants.C["C3_MAX_IMAGE"] == 65536 and constants.C["C3_CLONE_CLEAR_SIGHAND"] == 1 << 32
    defines = re.findall(r"^#define (C3_\w+) ", constants.HEADER.read_text(), re.M)
    # Every C3_ constant has a value Python can read.
    assert set(defines) == set(constants.C) | set(constants.read_strings())
    assert constants.C["C3_PIDFD_GONE"] == -1 and constants.SIGNAL_NAMES[16] == "CHLD"


def test_the_headers_clone_bits_are_the_abis() -> None:
    for name, value in constants.C.items():
        if name.startswith("C3_CLONE_"):
            assert abi.CLONE[name.removeprefix("C3_")] == value, name
    assert constants.C["C3_CSIGNAL"] == abi.CSIGNAL
    assert (constants.C["C3_OFF_FLAGS"], constants.C["C3_OFF_EXIT_SIGNAL"]) == (abi.OFFSETS["flags"], abi.OFFSETS["exit_signal"])


def test_every_public_function_and_class_states_its_contract() -> None:
    missing = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        if not ast.get_docstring(tree):
            missing.append(f"{path.name}: the module")
        for node in tree.body:
            members = node.body if isinstance(node, ast.ClassDef) else []
            for item in [node, *members]:
                if isinstance(item, (ast.FunctionDef, ast.ClassDef)) and not item.name.startswith("_") \
                        and not ast.get_docstring(item):
                    missing.append(f"{path.name}:{item.lineno} {item.name}")
    assert missing == []
