"""The executor's wire format, checked against the C side's own constants."""

import struct

from clone3_fuzz.model.case import parse
from clone3_fuzz.runtime._executor import ffi, lib
from clone3_fuzz.runtime.executor import decode_outcome, encode_case


def test_record_layout() -> None:
    case = parse({"size": 100, "set_tid": [7, 8, 9], "pidfd": "scratch", "memory": "guard", "readable": 90})
    record = encode_case(case)
    header = ffi.new("struct c3_case *")
    ffi.memmove(header, record[:32], 32)
    # set_tid_size (3) is the last nonzero byte: the image stops there, the executor pads.
    assert (header.size, header.nbytes, header.readable, header.memory, header.nset_tid) == (100, 73, 90, lib.C3_MEM_GUARD, 3)
    assert header.ref[1] == lib.C3_REF_SCRATCH and header.ref[8] == lib.C3_REF_SET_TID_LIST and header.nrefs == 2
    assert record[32:105] == case.image()[:73] and record[105:112] == bytes(7)
    assert struct.unpack("=3i", record[112:124]) == (7, 8, 9)
    assert len(record) % 8 == 0 and len(encode_case(parse({"size": 4097}))) == 32


def test_outcome_decoding() -> None:
    raw = ffi.new("struct c3_outcome *", {"kind": lib.C3_OUT_RETURNED, "ret": -7})
    assert decode_outcome(raw).observed == "E2BIG"
    raw.ret = 42
    assert decode_outcome(raw).observed == "success"
    raw.kind, raw.status = lib.C3_OUT_CRASH, 11  # wait status: killed by SIGSEGV
    assert decode_outcome(raw).detail == "executor killed by SIGSEGV"
    raw.kind = lib.C3_OUT_PENDING
    assert decode_outcome(raw) is None
