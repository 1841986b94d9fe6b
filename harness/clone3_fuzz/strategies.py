"""Hypothesis strategies for clone3 cases, for users' own tests.

A case (:class:`clone3_fuzz.model.case.Case`) is one clone3 call: its size argument,
the struct's content and where it lies. The strategies draw the classes the kernel's
checks tell apart::

    from hypothesis import given
    from clone3_fuzz.strategies import cases

    @given(cases())
    def test_my_sandbox_agrees(case):
        ...  # run case.image()[:case.size] through your clone3, compare with the kernel

- :func:`cases`: whole cases (``page``: the page size; ``cgroup2``: allow a cgroup fd).
- :func:`batches`: lists of cases, for runs that pay per batch.
- :func:`sizes`, :func:`flags`, :func:`exit_signals`: one field's classes each.
- :func:`cgroups`: the cgroup field (and CLONE_INTO_CGROUP) as case keys.

Pointers are only ever resources the executor owns, NULL, or addresses no process can
map: a random literal address could be the caller's own memory.
"""

from .campaign.strategies import batches, cases, cgroups, exit_signals, flags, sizes

__all__ = ["batches", "cases", "cgroups", "exit_signals", "flags", "sizes"]
