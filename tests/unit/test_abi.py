import pytest
from clone3_fuzz.model import abi


def test_layout_matches_uapi() -> None:
    assert abi.OFFSETS == {
        "flags": 0, "pidfd": 8, "child_tid": 16, "parent_tid": 24, "exit_signal": 32, "stack": 40,
        "stack_size": 48, "tls": 56, "set_tid": 64, "set_tid_size": 72, "cgroup": 80,
    }
    assert (abi.CLONE_ARGS_SIZE_VER0, abi.CLONE_ARGS_SIZE_VER1, abi.CLONE_ARGS_SIZE_VER2) == (64, 80, 88)
    # Each VER size ends right after the fields its version added.
    for version, size in abi.VERSION_SIZES:
        end = max(abi.OFFSETS[n] + 8 for n, since in abi.FIELD_SINCE.items() if since <= version)
        assert end == size


def test_flags_are_distinct_single_bits() -> None:
    values = [f.value for f in abi.FLAGS]
    assert len(set(values)) == len(values)
    assert all(v & (v - 1) == 0 for v in values)
    assert abi.CLONE["CLONE_NEWTIME"] & abi.CSIGNAL
    assert abi.CLONE["CLONE_EMPTY_MNTNS"] == 1 << 37  # the merged value, not the RFC's 1 << 34
    assert abi.FLAG_BY_NAME["CLONE_DETACHED"].clone3 is None


def test_encode_decode_round_trip() -> None:
    fields = {name: (i + 1) * 0x0101010101 for i, name in enumerate(abi.FIELDS)}
    buf = abi.encode(fields)
    assert len(buf) == 88
    assert abi.decode(buf) == fields


def test_encode_truncates_and_extends() -> None:
    assert abi.encode({"flags": 0x0102030405060708}, length=4) == bytes([8, 7, 6, 5])
    buf = abi.encode({}, {96: 7}, length=100)
    assert len(buf) == 100 and buf[96] == 7 and buf.count(0) == 99
    with pytest.raises(ValueError):
        abi.encode({}, {80: 1}, length=100)


def test_decode_zero_fills_a_short_struct() -> None:
    assert abi.decode(abi.encode({"set_tid": 0x1122334455667788}, length=68))["set_tid"] == 0x55667788


@pytest.mark.parametrize("flags", [0, 0x400000, 0x8000_0000_0000_0000 | 0x100, abi.U64_MAX])
def test_flag_names_round_trip(flags: int) -> None:
    assert abi.parse_flags("|".join(abi.flag_names(flags)) or "0") == flags
