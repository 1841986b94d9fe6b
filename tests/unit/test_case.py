import io
import json

import pytest
from clone3_fuzz.model import abi
from clone3_fuzz.model.case import MAX_IMAGE, CaseError, loads, parse, read_jsonl


@pytest.mark.parametrize(
    ("obj", "key"),
    [
        ({"size": 64, "flgs": 1}, "flgs"),
        ({}, "size"),
        ({"size": -1}, "size"),
        ({"size": 1 << 64}, "size"),
        ({"size": True}, "size"),
        ({"size": "64"}, "size"),
        ({"size": 88, "flags": "CLONE_NOPE"}, "flags"),
        ({"size": 88, "exit_signal": "SIGNOPE"}, "exit_signal"),
        ({"size": 88, "flags": "scratch"}, "flags"),
        ({"size": 88, "cgroup": "scratch"}, "cgroup"),
        ({"size": 88, "pidfd": "cgroup2"}, "pidfd"),
        ({"size": 88, "set_tid": [1] * 4097}, "set_tid"),
        ({"size": 88, "set_tid": [1 << 32]}, "set_tid[0]"),
        ({"size": 88, "set_tid": [1, "x"]}, "set_tid[1]"),
        ({"size": 88, "tail": {"80": 1}}, "tail"),
        ({"size": 88, "tail": {"96": 256}}, "tail[96]"),
        ({"size": 88, "tail": [1]}, "tail"),
        ({"size": 88, "hex": "zz"}, "hex"),
        ({"size": 88, "hex": "00", "flags": 1}, "hex"),
        ({"size": 88, "hex": "00" * (MAX_IMAGE + 1)}, "hex"),
        ({"size": 88, "memory": "swap"}, "memory"),
        ({"size": 88, "readable": 10}, "readable"),
        ({"size": 88, "memory": "guard", "readable": MAX_IMAGE + 1}, "readable"),
        ({"size": 88, "note": 3}, "note"),
    ],
)
def test_bad_cases_name_their_key(obj: dict, key: str) -> None:
    with pytest.raises(CaseError) as info:
        parse(obj)
    assert info.value.key == key
    assert str(info.value).startswith(f"{key}: ")


def test_not_an_object() -> None:
    with pytest.raises(CaseError, match="expected a JSON object"):
        loads("[1, 2]")
    with pytest.raises(CaseError) as info:
        loads("{not json")
    assert info.value.key == "json"


def test_values_in_every_spelling() -> None:
    case = parse({"size": "0x58", "flags": "CLONE_VM|CLONE_THREAD|0x100000000", "exit_signal": "SIGCHLD",
                  "stack": "0x1000", "stack_size": 4096, "tls": -1})
    assert case.size == 88
    assert case.values["flags"] == 0x100 | 0x10000 | 1 << 32
    assert case.values["exit_signal"] == 17
    assert case.values["tls"] == abi.U64_MAX
    assert abi.decode(case.image())["stack"] == 0x1000


def test_the_kernel_selftests_set_tid_vectors_are_cases() -> None:
    # tools/testing/selftests/clone3/clone3_set_tid.c passes arrays longer than the 32
    # levels the kernel reads (65 and 1,344 pids), and pid -1 written as its u32 image.
    for count in (65, 1344):
        case = parse({"size": 88, "set_tid": [1] * count, "set_tid_size": 33})
        assert len(case.set_tid_pids) == count and case.values["set_tid_size"] == 33
    assert parse({"size": 88, "set_tid": [4294967295]}).set_tid_pids == (-1,)
    assert parse({"size": 88, "set_tid": [4294967295]}).to_json()["set_tid"] == [-1]


def test_set_tid_list_defaults_its_size() -> None:
    case = parse({"size": 88, "set_tid": [1, 2]})
    assert case.set_tid_pids == (1, 2) and case.values["set_tid_size"] == 2
    assert parse({"size": 88, "set_tid": [1, 2], "set_tid_size": 5}).values["set_tid_size"] == 5


def test_image_places_the_tail_past_the_struct() -> None:
    image = parse({"size": 4096, "tail": {"4000": 9}}).image()
    assert len(image) == 4001 and image[4000] == 9 and not any(image[:4000])


@pytest.mark.parametrize(
    "obj",
    [
        {"size": 64},
        {"size": 88, "flags": "CLONE_PIDFD", "pidfd": "scratch", "exit_signal": 17},
        {"size": 4096, "tail": {"96": 1, "200": 255}, "memory": "guard", "readable": 100},
        {"size": 88, "set_tid": [1, 5], "set_tid_size": 2, "cgroup": "cgroup2"},
        {"size": 80, "hex": "01" * 80, "memory": "null"},
        {"size": 88, "flags": "CLONE_DETACHED|0x8000000000000000", "tls": "kernel", "note": "why"},
        {"size": 88, "flags": "0x1|CLONE_VM"},  # an unnamed lowest bit (found by the decoder test)
        {"size": 88, "set_tid": [1, 2], "set_tid_size": 0},  # a size unlike the list's length
    ],
)
def test_canonical_json_round_trips(obj: dict) -> None:
    case = parse(obj)
    again = loads(case.dumps())
    assert again == case
    assert again.dumps() == case.dumps()


def test_jsonl_reports_each_bad_line_and_keeps_going() -> None:
    text = "# a comment\n{\"size\": 64}\n\n{\"size\": 64, \"x\": 1}\n{\"size\": 88}\n"
    items = list(read_jsonl(io.BytesIO(text.encode()), "seeds.jsonl"))
    assert [where for where, _ in items] == ["seeds.jsonl:2", "seeds.jsonl:4", "seeds.jsonl:5"]
    assert isinstance(items[1][1], CaseError) and str(items[1][1]) == "seeds.jsonl:4: x: unknown key"
    assert json.loads(items[2][1].dumps()) == {"size": 88}


@pytest.mark.parametrize(("line", "message"), [
    (b'{"size": 88, "size": 4097}', "c:1: size: duplicate key"),
    (b"[" * 3000 + b"]" * 3000, "c:1: json: nested more than 8 deep"),
    (b'{"size": ' + b"9" * 5000 + b"}", "c:1: json: an integer of 5000 digits (at most 40)"),
    (b'{"size": 88, "note": "\xff"}', "c:1: utf-8: not UTF-8 at byte 22"),
])
def test_parsing_is_strict_and_names_what_is_wrong(line: bytes, message: str) -> None:
    (where, error), = read_jsonl(io.BytesIO(line + b"\n"), "c")
    assert isinstance(error, CaseError) and str(error) == message


def test_a_line_too_long_ends_the_stream() -> None:
    from clone3_fuzz.model.case import MAX_LINE

    items = list(read_jsonl(io.BytesIO(b"0" * (MAX_LINE + 10) + b'\n{"size": 88}\n'), "zero"))
    assert len(items) == 1 and "line too long" in str(items[0][1])
