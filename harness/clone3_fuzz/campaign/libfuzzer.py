"""The target's files in libFuzzer's own formats, for libFuzzer's tooling and ClusterFuzzLite:

- ``clone3_target.options``: the campaign's flags, as ClusterFuzz reads them (an ini
  file with a ``[libfuzzer]`` section); ``clone3-fuzz fuzz`` starts its workers with them.
- ``clone3_target.dict``: the tokens of both input forms (see :mod:`.decode`): the JSON
  keys and names, and the binary records' interesting values, little-endian.
- ``clone3_target_seed_corpus/``: the JSON seeds (both files), one input a file, named by the SHA-1
  of its content as libFuzzer names its own corpus files.

They are written from this module into ``fuzz/`` (``make fuzz-files``); a test checks that
the committed copies are current. The installed package carries them too.
"""

from __future__ import annotations

import configparser
import hashlib
import struct
from pathlib import Path

from ..model import abi
from ..model.case import MEMORY, POINTER_RESOURCES
from .corpus import CGROUP2_SEEDS, SEEDS

NAME = "clone3_target"
#: The campaign's libFuzzer flags. Long inputs are batches of many cases: grow to them at
#: once (len_control=0), up to 4096 bytes (max_len: room for MAX_CASES binary records).
OPTIONS = {"max_len": "4096", "len_control": "0"}
HERE = Path(__file__).resolve().parent


def options_text() -> str:
    """The ``.options`` file."""
    lines = ["[libfuzzer]", *(f"{key} = {value}" for key, value in OPTIONS.items()), f"dict = {NAME}.dict"]
    return "\n".join(lines) + "\n"


def _escape(data: bytes) -> str:
    return "".join(chr(b) if 0x20 <= b < 0x7F and chr(b) not in '"\\' else f"\\x{b:02x}" for b in data)


def dictionary_text() -> str:
    """The ``.dict`` file: one ``name="token"`` a line."""
    words = ["size", "tail", "hex", "memory", "readable", *abi.FIELDS, *MEMORY, *POINTER_RESOURCES, "cgroup2",
             *abi.CLONE, "SIGCHLD", "SIGKILL", "SIGSTOP"]
    tokens = {f"json_{w.lower()}": f'"{w}"'.encode() for w in dict.fromkeys(words)}
    numbers = {"ver0": abi.CLONE_ARGS_SIZE_VER0, "ver1": abi.CLONE_ARGS_SIZE_VER1, "ver2": abi.CLONE_ARGS_SIZE_VER2,
               "page": 4096, "page_plus_one": 4097, "u64_max": abi.U64_MAX, "csignal": abi.CSIGNAL,
               **{name.lower(): value for name, value in abi.CLONE.items()}}
    tokens.update({f"u64_{name}": struct.pack("<Q", value) for name, value in numbers.items()})
    return "".join(f'{name}="{_escape(token)}"\n' for name, token in tokens.items())


def seed_inputs() -> dict[str, bytes]:
    """The seed corpus: file name -> input. The cgroup seeds are among them: the decoder
    drops their cases where the caller cannot have a scratch cgroup."""
    lines = [line for seeds in (SEEDS, CGROUP2_SEEDS) for line in seeds.read_text().splitlines() if line.startswith("{")]
    return {hashlib.sha1(data).hexdigest(): data for data in (line.encode() + b"\n" for line in lines)}


def options(path: Path) -> dict[str, str]:
    """The ``[libfuzzer]`` flags of an ``.options`` file; its ``dict`` made a path beside it."""
    parser = configparser.ConfigParser()
    parser.read_string(path.read_text())
    flags = dict(parser["libfuzzer"])
    if "dict" in flags:
        flags["dict"] = str(path.parent / flags["dict"])
    return flags


def write(folder: Path) -> None:
    """Writes the three into ``folder`` (the seed corpus replaced whole)."""
    (folder / f"{NAME}.options").write_text(options_text())
    (folder / f"{NAME}.dict").write_text(dictionary_text())
    seeds = folder / f"{NAME}_seed_corpus"
    seeds.mkdir(exist_ok=True)
    for old in seeds.iterdir():
        old.unlink()
    for name, data in seed_inputs().items():
        (seeds / name).write_bytes(data)


def installed_options() -> Path:
    """The ``.options`` file the campaign runs with: the package's copy when installed,
    else the checkout's ``fuzz/``."""
    shipped = HERE / f"{NAME}.options"
    return shipped if shipped.exists() else HERE.parents[2] / "fuzz" / f"{NAME}.options"


if __name__ == "__main__":
    write(HERE.parents[2] / "fuzz")
