"""The executor's wire format, checked against the C side's own constants."""

import struct

from harness._executor import ffi, lib
from harness.case import parse
from harness.executor import decode_outcome, encode_case


def test_record_layout() -> None:
    case = parse({"size": 100, "set_tid": [7, 8, 9], "pidfd": "scratch", "memory": "guard", "readable": 90})
    record = encode_case(case)
    header = ffi.new("struct c3_case *")
    ffi.memmove(header, record[:32], 32)
    assert (header.size, header.nbytes, header.readable, header.memory, header.nset_tid) == (100, 88, 90, lib.C3_MEM_GUARD, 3)
    assert header.ref[1] == lib.C3_REF_SCRATCH and header.ref[8] == lib.C3_REF_SET_TID_LIST and header.nrefs == 2
    assert record[32:120] == case.image()
    assert struct.unpack("=3i", record[120:132]) == (7, 8, 9)
    assert len(record) % 8 == 0


def test_outcome_decoding() -> None:
    raw = ffi.new("struct c3_outcome *", {"kind": lib.C3_OUT_RETURNED, "ret": -7})
    assert decode_outcome(raw).observed == "E2BIG"
    raw.ret = 42
    assert decode_outcome(raw).observed == "success"
    raw.kind, raw.status = lib.C3_OUT_CRASH, 11  # wait status: killed by SIGSEGV
    assert decode_outcome(raw).detail == "executor killed by SIGSEGV"
    raw.kind = lib.C3_OUT_PENDING
    assert decode_outcome(raw) is None
