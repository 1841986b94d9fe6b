"""A pytest plugin (the ``pytest11`` entry point: ``pip install clone3-fuzz`` is enough):
run a command of your own as on another kernel's clone3, or behind a container profile.

    import pytest

    @pytest.mark.clone3_kernel("5.5")
    def test_my_runtime_copes_without_into_cgroup(clone3_exec):
        done = clone3_exec(["./my-runtime", "run", "x"])
        assert done.exit_code == 0
        assert all(call["answer"] != "EPERM" for call in done.calls)

    def test_glibc_falls_back_on_enosys(clone3_exec):
        assert clone3_exec(["python3", "-c", "import threading; ..."], clone3="ENOSYS").exit_code == 0

``clone3_exec(argv, kernel=None, clone3=None)`` returns an
:class:`~clone3_fuzz.runtime.supervise.Execution` (``exit_code``, ``calls``, ``rules``);
without either argument it answers as the test's ``clone3_kernel`` marker says. The API
underneath is :func:`clone3_fuzz.runtime.supervise.exec_as`.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """Registers the marker."""
    config.addinivalue_line("markers", "clone3_kernel(version): clone3_exec answers as that kernel version would")


@pytest.fixture
def clone3_exec(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """run(argv, kernel=None, clone3=None): ``argv`` with every clone3 answered as
    ``kernel`` (default: the test's clone3_kernel marker) or failing with ``clone3``."""
    from .runtime.supervise import exec_as  # the compiled module only for tests that use it

    marker = request.node.get_closest_marker("clone3_kernel")

    def run(argv: Sequence[str], kernel: str | None = None, clone3: str | None = None) -> Any:
        if kernel is None and clone3 is None:
            if marker is None:
                raise pytest.UsageError("clone3_exec: name a kernel or a clone3 errno, or mark the test clone3_kernel")
            kernel = str(marker.args[0])
        return exec_as(argv, kernel=kernel, clone3=clone3)

    return run
