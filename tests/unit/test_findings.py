"""Findings as pure functions: signatures stable and blind to incidental values, the
shrinker's steps, the expectation check, the text for a mail, and the comparison of runs."""

from __future__ import annotations

from clone3_fuzz.campaign import finding as findings
from clone3_fuzz.campaign import minimize as shrink
from clone3_fuzz.campaign import triage
from clone3_fuzz.campaign.finding import Finding, expectation_problem, shape
from clone3_fuzz.model.case import parse

from .test_oracle import ROOT


def oracle_finding(case: dict, observed: str, expected: tuple[str, ...], rule: str) -> Finding:
    return Finding("oracle", rule, parse(case), observed, expected)


def test_the_signature_is_the_rule_and_the_shape() -> None:
    a = oracle_finding({"size": 89, "tail": {"88": 1}}, "success", ("E2BIG",), "copy.tail_nonzero")
    b = oracle_finding({"size": 400, "tail": {"300": 7}}, "EINVAL", ("E2BIG",), "copy.tail_nonzero")
    # What a broken kernel answered, the offset, the byte and the exact size do not matter.
    assert a.signature(4096) == b.signature(4096) == "copy.tail_nonzero--tail,tail"
    c = oracle_finding({"size": 64, "flags": "CLONE_DETACHED"}, "success", ("EINVAL",), "flags.deprecated")
    assert c.signature(4096) == "flags.deprecated--ver0,CLONE_DETACHED"


def test_a_pointer_is_a_pointer_however_it_is_named() -> None:
    assert shape(parse({"size": 64, "stack": "kernel", "stack_size": 1}), 4096) == \
        shape(parse({"size": 64, "stack": "0xfffffffffffff000", "stack_size": 8}), 4096)


def test_the_shrinker_takes_bold_steps_first() -> None:
    steps = shrink._simpler(parse({"size": 700, "flags": "CLONE_VM|CLONE_VFORK", "tail": {"600": 3}}))
    assert steps[0] == parse({"size": 700})
    assert parse({"size": 89, "flags": "CLONE_VM|CLONE_VFORK", "tail": {"88": 3}}) in steps
    assert steps[-1].size == 699  # the smallest step comes last
    lists = shrink._simpler(parse({"size": 80, "set_tid": [5, 6, 7]}))
    assert parse({"size": 80, "set_tid": [5, 7]}) in lists


def test_a_hex_case_shrinks_through_its_fields() -> None:
    image = bytes(8) + bytes(80) + bytes([0] * 10 + [1])
    steps = shrink._simpler(parse({"size": 99, "hex": image.hex()}))
    assert parse({"size": 99, "tail": {"98": 1}}) in steps


def test_an_expectation_must_be_the_versions() -> None:
    good = oracle_finding({"size": 4097}, "EINVAL", ("E2BIG",), "size.over_page")
    assert expectation_problem(good, ROOT) is None
    stale = oracle_finding({"size": 64}, "EINVAL", ("E2BIG",), "size.over_page")  # shrunk past its expectation
    assert "is not 6.18.0's" in str(expectation_problem(stale, ROOT))
    # A relation whose two cases the oracle itself tells apart is the model's problem.
    source, variant = parse({"size": 88}), parse({"size": 4097})
    relation = Finding("relation", "relation.zero_extension", variant, "E2BIG", ("success",), source, "success", (4097,))
    assert "the oracle predicts the difference" in str(expectation_problem(relation, ROOT))


def test_the_text_for_a_mail() -> None:
    f = oracle_finding({"size": 97, "tail": {"96": 1}}, "success", ("E2BIG",), "copy.tail_nonzero")
    assert findings.title(f, "6.18.44") == ("clone3: a 97-byte struct, nonzero byte at offset 96 accepted, "
                                            "expected E2BIG (copy.tail_nonzero), 6.18.44")
    text = findings.c_initializer(parse({"size": 88, "flags": "CLONE_VM", "exit_signal": 17}))
    assert ".flags = 0x100ULL, /* CLONE_VM */" in text and ".exit_signal = 0x11ULL," in text


def test_runs_compare_by_signature() -> None:
    old = {"a": {"status": "confirmed"}, "b": {"status": "confirmed"}, "x": {"status": "unconfirmed", "checked": True}}
    new = {"b": {"status": "confirmed"}, "c": {"status": "confirmed"}, "x": {"status": "confirmed"}}
    result = triage.compare(old, new)
    assert (result.new, result.fixed, result.still) == (["c", "x"], ["a"], ["b"])


def test_coupled_fields_shrink_as_a_pair() -> None:
    # Half of the pair fails stack.invalid (reference §1.4): only both at once can go.
    steps = shrink._simpler(parse({"size": 64, "flags": "CLONE_DETACHED", "stack": "scratch", "stack_size": 1}))
    assert parse({"size": 64, "flags": "CLONE_DETACHED"}) in steps

