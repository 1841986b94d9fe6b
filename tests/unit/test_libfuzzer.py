"""The libFuzzer target's files in fuzz/ are the package's own, current ones."""

from __future__ import annotations

from pathlib import Path

from clone3_fuzz.campaign import libfuzzer
from clone3_fuzz.campaign.corpus import CGROUP2_SEEDS
from clone3_fuzz.campaign.decode import decode
from clone3_fuzz.model.case import loads

FUZZ = Path(__file__).resolve().parents[2] / "fuzz"


def test_the_committed_files_are_current() -> None:
    assert (FUZZ / "clone3_target.options").read_text() == libfuzzer.options_text(), "run make fuzz-files"
    assert (FUZZ / "clone3_target.dict").read_text() == libfuzzer.dictionary_text(), "run make fuzz-files"
    seeds = FUZZ / "clone3_target_seed_corpus"
    assert {p.name: p.read_bytes() for p in seeds.iterdir()} == libfuzzer.seed_inputs(), "run make fuzz-files"


def test_the_options_name_the_dictionary_beside_them() -> None:
    flags = libfuzzer.options(FUZZ / "clone3_target.options")
    assert flags == {**libfuzzer.OPTIONS, "dict": str(FUZZ / "clone3_target.dict")}


def test_every_seed_input_decodes_to_its_own_json_case() -> None:
    # Not to the binary reading that a JSON line which does not parse falls back to.
    for data in libfuzzer.seed_inputs().values():
        assert decode(data, cgroup2=True) == [loads(data.decode())]


def test_the_cgroup_seeds_are_among_the_inputs_and_dropped_where_no_cgroup_can_be_made() -> None:
    named = [data for data in libfuzzer.seed_inputs().values() if loads(data.decode()).needs_cgroup]
    assert len(named) == len(CGROUP2_SEEDS.read_text().splitlines()) - 1 >= 3  # less the comment line
    for data in named:
        assert not any(case.needs_cgroup for case in decode(data, cgroup2=False))
