"""The fuzzer's decoder: any bytes are a batch of valid cases."""

from __future__ import annotations

import random

from clone3_fuzz.campaign import decode as decoder
from clone3_fuzz.campaign.decode import MAX_CASES, decode
from clone3_fuzz.model.case import loads


def test_any_bytes_decode_to_valid_cases() -> None:
    rng = random.Random(1)
    for _ in range(2000):
        data = rng.randbytes(rng.randint(0, 600))
        cases = decode(data)
        assert 1 <= len(cases) <= MAX_CASES
        assert all(loads(case.dumps()) == case for case in cases)


def test_json_lines_are_cases_and_a_broken_input_falls_back_to_binary() -> None:
    assert [c.size for c in decode(b'{"size": 4097}\n{"size": 64, "bogus": 1}\n{"size": 72}')] == [4097, 72]
    assert len(decode(b'{"size": 40')) >= 1


def test_remembered_records_decode_as_they_would_afresh() -> None:
    # Mutations of one input, as libFuzzer makes them: most records repeat, some do not.
    rng = random.Random(2)
    base = rng.randbytes(400)
    inputs = [base]
    for _ in range(300):
        data = bytearray(rng.choice(inputs))
        data[rng.randrange(len(data))] = rng.randrange(256)
        inputs.append(bytes(data[:rng.randint(1, len(data))]) + rng.randbytes(rng.randint(0, 40)))
    remembered = [decode(data) for data in inputs]
    for data, cases in zip(inputs, remembered):
        decoder._SEEN.clear()
        assert decode(data) == cases
