"""The case: one clone3 call, as a JSON object; a corpus file is JSON Lines of them.

The format is documented for users in ``corpus/README.md``. This module parses it
strictly (an unknown key or a bad value is a :class:`CaseError` naming the key),
renders it canonically, and builds the struct image the executor places in memory.
"""

from __future__ import annotations

import json
import signal
from dataclasses import dataclass, field
from functools import cached_property
from typing import IO, Any, Iterator, Mapping

from . import abi
from .constants import C

MEMORY = ("mapped", "guard", "null", "unmapped")
#: What a pointer field may name instead of an address (resolved by the executor).
POINTER_RESOURCES = ("scratch", "unmapped", "kernel")
CGROUP_RESOURCE = "cgroup2"
SET_TID_LIST = "list"  # the ref of a set_tid given as a list of pids
MAX_IMAGE = C["C3_MAX_IMAGE"]  # the largest struct image the executor places
MAX_SET_TID = C["C3_MAX_SET_TID"]  # the longest set_tid list it places
_OTHER_KEYS = ("size", "tail", "hex", "memory", "readable", "note")


class CaseError(ValueError):
    """A case that does not follow the format; ``key`` names the offending key."""

    def __init__(self, key: str, problem: str, where: str = "") -> None:
        self.key, self.problem, self.where = key, problem, where
        super().__init__(f"{where + ': ' if where else ''}{key}: {problem}")

    def located(self, where: str) -> CaseError:
        """The same error, said to come from ``where`` (``file:line``)."""
        return CaseError(self.key, self.problem, where)


@dataclass(frozen=True)
class Case:
    """One clone3 call: the size argument, the struct's content and where it lies.

    ``values`` holds literal field values (absent = 0); ``refs`` the fields that name a
    resource instead; ``set_tid_pids`` the pid list when ``set_tid`` is one. ``image``
    replaces fields and tail when the case was given as ``hex``.
    """

    size: int
    values: Mapping[str, int] = field(default_factory=dict)
    refs: Mapping[str, str] = field(default_factory=dict)
    set_tid_pids: tuple[int, ...] = ()
    tail: Mapping[int, int] = field(default_factory=dict)
    hex: bytes | None = None
    memory: str = "mapped"
    readable: int | None = None
    note: str = ""

    @cached_property
    def key(self) -> tuple[object, ...]:
        """What the call is, as a hashable value: equal for two cases that make the same
        call (the note aside), for memos of what depends on the call alone."""
        return (self.size, tuple(sorted(self.values.items())), tuple(sorted(self.refs.items())), self.set_tid_pids,
                tuple(sorted(self.tail.items())), self.hex, self.memory, self.readable)

    def image(self) -> bytes:
        """The struct bytes; the executor zero-pads or truncates them to ``size``."""
        if self.hex is not None:
            return self.hex
        end = max((offset + 1 for offset in self.tail), default=abi.STRUCT_SIZE)
        return abi.encode(self.values, self.tail, max(end, abi.STRUCT_SIZE))

    def field_value(self, name: str) -> int:
        """A literal field as the kernel would read it from the image (refs read as 0)."""
        if self.hex is not None:
            return abi.decode(self.hex)[name]
        return self.values.get(name, 0)

    @property
    def needs_cgroup(self) -> bool:
        """Whether the case names the run's scratch cgroup v2 directory."""
        return self.refs.get("cgroup") == CGROUP_RESOURCE

    @property
    def placed_readable(self) -> int:
        """For ``"guard"``: bytes mapped from the buffer's start."""
        return min(self.size, MAX_IMAGE) if self.readable is None else self.readable

    def to_json(self) -> dict[str, Any]:
        """The canonical JSON object: zero fields and default keys are left out."""
        out: dict[str, Any] = {"size": self.size}
        for name in abi.FIELDS:
            if self.refs.get(name) == SET_TID_LIST:
                out[name] = list(self.set_tid_pids)
            elif name in self.refs:
                out[name] = self.refs[name]
            elif self.values.get(name) or (name == "set_tid_size" and self._size_unlike_list):
                out[name] = _render_value(name, self.values.get(name, 0))
        if self.tail:
            out["tail"] = {str(k): v for k, v in sorted(self.tail.items())}
        if self.hex is not None:
            out["hex"] = self.hex.hex()
        if self.memory != "mapped":
            out["memory"] = self.memory
        if self.readable is not None:
            out["readable"] = self.readable
        if self.note:
            out["note"] = self.note
        return out

    @property
    def _size_unlike_list(self) -> bool:
        """A set_tid list whose set_tid_size is not its length (0 included) must say so:
        parse() would take the length otherwise."""
        return self.refs.get("set_tid") == SET_TID_LIST and self.values.get("set_tid_size", 0) != len(self.set_tid_pids)

    def dumps(self) -> str:
        """The canonical JSON text of the case, on one line."""
        return json.dumps(self.to_json(), separators=(",", ":"))


def _render_value(name: str, value: int) -> int | str:
    if name == "flags":
        return "|".join(abi.flag_names(value))
    if name in abi.POINTER_FIELDS or value > 0xFFFFFFFF:
        return hex(value)
    return value


def _integer(key: str, raw: Any, lo: int, hi: int) -> int:
    if isinstance(raw, bool):
        raise CaseError(key, f"expected an integer, got {json.dumps(raw)}")
    if isinstance(raw, str) and raw.lower().startswith(("0x", "-0x")):
        try:
            raw = int(raw, 16)
        except ValueError:
            raise CaseError(key, f"bad hexadecimal {raw!r}") from None
    if not isinstance(raw, int):
        raise CaseError(key, f"expected an integer or a \"0x...\" string, got {json.dumps(raw)}")
    if not lo <= raw <= hi:
        raise CaseError(key, f"{raw} is out of range [{lo}, {hi}]")
    return raw


def _u64(key: str, raw: Any) -> int:
    """Any u64; a negative number is taken as its two's complement (exit_signal: -1)."""
    return _integer(key, raw, -(1 << 63), abi.U64_MAX) & abi.U64_MAX


def _pid(key: str, raw: Any) -> int:
    value = _integer(key, raw, -(1 << 31), (1 << 32) - 1)
    return value - (1 << 32) if value >= 1 << 31 else value


def _field(name: str, raw: Any) -> tuple[int | None, str | None, tuple[int, ...]]:
    """(literal, resource, pids) for one struct field."""
    if name == "flags" and isinstance(raw, str):
        # Names and numbers joined by "|", as to_json() writes them ("0x1|CLONE_VM" too).
        try:
            value = abi.parse_flags(raw)
        except ValueError as e:
            raise CaseError(name, str(e)) from None
        return _u64(name, value), None, ()
    if name == "exit_signal" and isinstance(raw, str) and raw.startswith("SIG"):
        try:
            return int(signal.Signals[raw]), None, ()
        except KeyError:
            raise CaseError(name, f"unknown signal {raw!r}") from None
    if name == "set_tid" and isinstance(raw, list):
        if len(raw) > MAX_SET_TID:
            raise CaseError(name, f"at most {MAX_SET_TID} pids, got {len(raw)}")
        # A pid_t: -1 may also be written as its u32 image, 4294967295, as C callers do.
        pids = tuple(_pid(f"{name}[{i}]", p) for i, p in enumerate(raw))
        return None, None, pids
    if isinstance(raw, str) and not raw.lower().startswith(("0x", "-0x")):
        allowed = (CGROUP_RESOURCE,) if name == "cgroup" else POINTER_RESOURCES if name in abi.POINTER_FIELDS else ()
        if raw not in allowed:
            what = " or ".join(repr(a) for a in allowed) if allowed else "no resource name"
            raise CaseError(name, f"{raw!r} is not a value here (takes an integer, \"0x...\", {what})")
        return None, raw, ()
    return _u64(name, raw), None, ()


def parse(obj: Any) -> Case:
    """A :class:`Case` from a decoded JSON object; raises :class:`CaseError`."""
    if not isinstance(obj, dict):
        raise CaseError("case", f"expected a JSON object, got {json.dumps(obj)[:40]}")
    unknown = [k for k in obj if k not in abi.FIELDS and k not in _OTHER_KEYS]
    if unknown:
        raise CaseError(unknown[0], "unknown key")
    if "size" not in obj:
        raise CaseError("size", "required")
    size = _integer("size", obj["size"], 0, abi.U64_MAX)

    values: dict[str, int] = {}
    refs: dict[str, str] = {}
    pids: tuple[int, ...] = ()
    for name in abi.FIELDS:
        if name in obj:
            literal, resource, listed = _field(name, obj[name])
            if literal:
                values[name] = literal
            if resource:
                refs[name] = resource
            if name == "set_tid" and isinstance(obj[name], list):
                refs[name], pids = SET_TID_LIST, listed
    if "set_tid" in obj and isinstance(obj["set_tid"], list) and "set_tid_size" not in obj and pids:
        values["set_tid_size"] = len(pids)

    tail: dict[int, int] = {}
    raw_tail = obj.get("tail", {})
    if not isinstance(raw_tail, dict):
        raise CaseError("tail", "expected an object {\"<offset>\": byte}")
    for key, byte in raw_tail.items():
        try:
            offset = int(key, 0)
        except ValueError:
            raise CaseError("tail", f"offset {key!r} is not an integer") from None
        if not abi.STRUCT_SIZE <= offset < MAX_IMAGE:
            raise CaseError("tail", f"offset {offset} is outside [{abi.STRUCT_SIZE}, {MAX_IMAGE})")
        tail[offset] = _integer(f"tail[{key}]", byte, 0, 255)

    image = None
    if "hex" in obj:
        if any(name in obj for name in abi.FIELDS) or "tail" in obj:
            raise CaseError("hex", "gives the whole buffer; it cannot be combined with fields or tail")
        if not isinstance(obj["hex"], str):
            raise CaseError("hex", "expected a string of hex digits")
        try:
            image = bytes.fromhex(obj["hex"])
        except ValueError:
            raise CaseError("hex", "not an even number of hex digits") from None
        if len(image) > MAX_IMAGE:
            raise CaseError("hex", f"{len(image)} bytes; at most {MAX_IMAGE}")

    memory = obj.get("memory", "mapped")
    if memory not in MEMORY:
        raise CaseError("memory", f"{memory!r} is not one of {', '.join(MEMORY)}")
    readable = None
    if "readable" in obj:
        if memory != "guard":
            raise CaseError("readable", "only applies to \"memory\": \"guard\"")
        readable = _integer("readable", obj["readable"], 0, MAX_IMAGE)
    note = obj.get("note", "")
    if not isinstance(note, str):
        raise CaseError("note", "expected a string")
    return Case(size, values, refs, pids, tail, image, memory, readable, note)


MAX_LINE = 1 << 20  # bytes in one JSON line: a case with a 64 KiB hex image fits many times
MAX_DEPTH = 8  # a case nests three deep at most ({"tail": {...}}, {"set_tid": [...]})
MAX_DIGITS = 40  # a u64 has 20 decimal digits


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise CaseError(key, "duplicate key")
        seen[key] = value
    return seen


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise CaseError("json", f"an integer of {len(text)} digits (at most {MAX_DIGITS})")
    return int(text)


def _depth(text: str) -> int:
    """How deep the brackets outside strings go."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            escaped, in_string = (False, True) if escaped else (char == "\\", char != '"')
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def strict_json(line: str) -> Any:
    """One line of JSON, read strictly: a duplicate key, nesting past :data:`MAX_DEPTH` or
    an integer past :data:`MAX_DIGITS` digits is a :class:`CaseError` naming it."""
    if _depth(line) > MAX_DEPTH:
        raise CaseError("json", f"nested more than {MAX_DEPTH} deep")
    try:
        return json.loads(line, object_pairs_hook=_no_duplicates, parse_int=_bounded_int)
    except CaseError:
        raise  # a duplicate key or a long integer, named already
    except json.JSONDecodeError as e:
        raise CaseError("json", e.msg) from None
    except (RecursionError, ValueError) as e:  # ValueError: Python's own integer-length limit
        raise CaseError("json", str(e).split(";")[0]) from None


def loads(line: str) -> Case:
    """A case from a line of JSON (see :func:`strict_json`); raises :class:`CaseError`."""
    return parse(strict_json(line))


def read_jsonl(stream: IO[bytes], name: str) -> Iterator[tuple[str, Case | CaseError]]:
    """Yields ``("file:line", case)`` for each case of a JSON Lines byte stream, or the
    located :class:`CaseError` in its place, so a caller may stop or skip. Blank lines
    and lines starting with ``#`` are comments. Memory stays bounded by :data:`MAX_LINE`:
    a longer line (``/dev/zero``, say) is an error that ends the stream."""
    number = 0
    while True:
        raw = stream.readline(MAX_LINE + 1)
        if not raw:
            return
        number += 1
        where = f"{name}:{number}"
        if len(raw) > MAX_LINE and not raw.endswith(b"\n"):
            yield where, CaseError("line", f"line too long (more than {MAX_LINE} bytes); the rest is not read", where)
            return
        try:
            text = raw.decode("utf-8").strip()
        except UnicodeDecodeError as e:
            yield where, CaseError("utf-8", f"not UTF-8 at byte {e.start}", where)
            continue
        if not text or text.startswith("#"):
            continue
        try:
            yield where, loads(text)
        except CaseError as e:
            yield where, e.located(where)
