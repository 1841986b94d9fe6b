"""Relations, as pure functions: a variant is rebuilt from its parameters, so that a
finding can be shrunk through its relation."""

from __future__ import annotations

import random

from clone3_fuzz.model.case import parse
from clone3_fuzz.model.relations import EXPECTED, RELATIONS, SAME, derive, variant_of

from .test_oracle import ROOT


def test_a_variant_is_rebuilt_from_its_parameters() -> None:
    rng = random.Random(7)
    for text in ({"size": 88, "flags": "CLONE_VM"}, {"size": 72, "exit_signal": 17}, {"size": 300, "tail": {"200": 4}}):
        for check in derive(parse(text), ROOT, rng):
            assert variant_of(check.relation, check.params, check.source, ROOT) == check.variant
            assert check.expected == EXPECTED.get(check.relation, SAME)


def test_every_relation_applies_somewhere() -> None:
    rng = random.Random(1)
    seen = {c.relation for text in ({"size": 88}, {"size": 72}) for c in derive(parse(text), ROOT, rng)}
    assert seen == set(RELATIONS)


def test_a_shrunk_source_keeps_its_relation() -> None:
    params = (1000, 500, 9)
    small = variant_of("tail_position", params, parse({"size": 64}), ROOT)
    assert small is not None and small.size == 1000 and small.hex is not None and small.hex[500] == 9
    assert variant_of("truncation", (), parse({"size": 88}), ROOT) is None  # only below the struct's size
    assert variant_of("truncation", (), parse({"size": 72, "flags": "CLONE_INTO_CGROUP"}), ROOT) is None
