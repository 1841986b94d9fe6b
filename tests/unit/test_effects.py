"""The effects the oracle predicts, as pure Python. Each test names the kernel code it
models; tests/live/test_effects.py shows the same effects on the running kernel."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from clone3_fuzz.model import effects
from clone3_fuzz.model import profile as profiles
from clone3_fuzz.model.case import parse
from clone3_fuzz.model.oracle import RULES, predict

from .test_oracle import NOBODY, ROOT


def due(case: dict[str, Any], profile: profiles.Profile = ROOT) -> list[str]:
    return predict(parse(case), profile).outcomes


def test_every_effect_has_a_rule() -> None:
    assert set(effects.ITEMS.values()) | {effects.UNTOUCHED} <= set(RULES)
    assert list(RULES).index("success") < list(RULES).index("effect.pidfd")


@pytest.mark.parametrize("signal,seen", [(0, "none"), (17, "SIGCHLD"), (10, "SIGUSR1"), (1, "SIGHUP"), (31, "SIGSYS"),
                                         (34, "SIG34"), (64, "SIG64")])
def test_the_parent_receives_the_exit_signal(signal: int, seen: str) -> None:
    # kernel/signal.c do_notify_parent(): exit_signal 0 sends nothing, any other is sent.
    assert due({"size": 88, "exit_signal": signal}) == [f"success{{signal={seen}}}"]


def test_sigkill_and_sigstop_reach_the_caller_itself() -> None:
    # SIGKILL kills the caller with its child: nothing else is seen. SIGSTOP stops it; the
    # SIGCONT that resumes it may still be pending.
    assert due({"size": 88, "exit_signal": "SIGKILL"}) == ["success{signal=SIGKILL}"]
    assert due({"size": 88, "exit_signal": "SIGSTOP"}) == ["success{signal=SIGCONT}", "success{signal=none}"]


def test_threads_and_clone_parent_children_signal_nobody_here() -> None:
    # copy_process(): a thread's exit_signal is -1; a CLONE_PARENT child's is the caller's
    # own, sent to the caller's parent.
    thread = {"size": 88, "flags": "CLONE_THREAD|CLONE_SIGHAND|CLONE_VM"}
    assert due(thread) == ["success{signal=none}"]
    assert due({"size": 88, "flags": "CLONE_PARENT"}) == ["success{signal=none}"]


def test_the_words_written() -> None:
    # kernel_clone(): put_user(nr, parent_tid); copy_process(): put_user(pidfd, args->pidfd).
    words = {"pidfd": "scratch", "child_tid": "scratch", "parent_tid": "scratch", "exit_signal": 17}
    assert due({"size": 88, **words}) == ["success{signal=SIGCHLD}"]  # no flag asked: none written
    assert due({"size": 88, "flags": "CLONE_PARENT_SETTID", **words}) == ["success{parent_tid=pid,signal=SIGCHLD}"]
    assert due({"size": 64, "flags": "CLONE_PIDFD", **words}) == ["success{pidfd=child,signal=SIGCHLD}"]
    # A literal pointer is not read back: nothing is said of it.
    assert due({"size": 88, "flags": "CLONE_PARENT_SETTID", "parent_tid": "0x10000"}) == ["success{signal=none}"]


def test_child_tid_is_written_in_the_child_s_mm() -> None:
    # schedule_tail() sets it, mm_release() clears it at exit: seen only through CLONE_VM.
    case = {"size": 88, "child_tid": "scratch", "exit_signal": 17}
    assert due({**case, "flags": "CLONE_CHILD_SETTID|CLONE_CHILD_CLEARTID"}) == ["success{signal=SIGCHLD}"]
    assert due({**case, "flags": "CLONE_VM|CLONE_CHILD_SETTID"}) == ["success{child_tid=pid,signal=SIGCHLD}"]
    assert due({**case, "flags": "CLONE_VM|CLONE_CHILD_SETTID|CLONE_CHILD_CLEARTID"}) == [
        "success{child_tid=0,signal=SIGCHLD}"]
    # Its pid in its own pid namespace: 1.
    assert due({**case, "flags": "CLONE_VM|CLONE_CHILD_SETTID|CLONE_NEWPID"}) == [
        "success{child_tid=1,signal=SIGCHLD,ns=pid}"]


def test_a_pidfd_of_a_task_someone_else_reaps_may_name_it_gone() -> None:
    thread = {"size": 88, "flags": "CLONE_THREAD|CLONE_SIGHAND|CLONE_VM|CLONE_PIDFD", "pidfd": "scratch"}
    assert due(thread) == ["success{pidfd=child,signal=none}", "success{pidfd=gone,signal=none}"]
    # Before 6.9 the pair is EINVAL: no effect at all.
    assert due(thread, profiles.named("6.8", ROOT)) == ["EINVAL"]


def test_what_procfs_and_the_release_let_us_see_of_a_pidfd() -> None:
    case = {"size": 88, "flags": "CLONE_PIDFD", "pidfd": "scratch"}
    assert due(case, replace(ROOT, procfs_effects=False)) == ["success{pidfd=fd,signal=none}"]
    # A pidfd's fdinfo names its task from 5.5.
    assert due(case, profiles.named("5.4", ROOT)) == ["success{pidfd=notpidfd,signal=none}"]
    assert due(case, profiles.named("5.5", ROOT)) == ["success{pidfd=child,signal=none}"]


def test_set_tid_is_honoured_at_the_caller_s_level() -> None:
    # alloc_pid(): set_tid[0] is the innermost level; with CLONE_NEWPID that is the new
    # namespace, and the caller's is the next.
    assert due({"size": 88, "set_tid": [5000]}) == ["EEXIST", "success{pid=set_tid,signal=none}"]
    assert due({"size": 88, "flags": "CLONE_NEWPID", "set_tid": [1, 5000]}) == [
        "EEXIST", "success{pid=set_tid,signal=none,ns=pid}"]
    assert due({"size": 88, "flags": "CLONE_NEWPID", "set_tid": [1]}) == ["success{signal=none,ns=pid}"]


def test_vfork_cgroup_and_namespaces() -> None:
    assert due({"size": 88, "flags": "CLONE_VFORK"}) == ["success{signal=none,vfork=waited}"]
    assert due({"size": 88, "flags": "CLONE_INTO_CGROUP", "cgroup": "cgroup2"}) == ["success{signal=none,cgroup=in}"]
    assert due({"size": 88, "flags": "CLONE_NEWUSER|CLONE_NEWPID"}, NOBODY) == ["success{signal=none,ns=pid+user}"]
    # A CLONE_PARENT child may be reaped by our parent before we look.
    assert due({"size": 88, "flags": "CLONE_PARENT|CLONE_VFORK"}) == ["success{signal=none}"]


def test_an_error_path_writes_only_what_the_kernel_wrote_before_it() -> None:
    # copy_process(): the pidfd's put_user comes before cgroup_can_fork(), which fails
    # with EBADF; the fd is released, the number stays.
    late = {"size": 88, "flags": "CLONE_INTO_CGROUP|CLONE_PIDFD", "pidfd": "scratch", "cgroup": 999}
    assert due(late) == ["EBADF{pidfd=closed}"]
    assert due({**late, "parent_tid": "scratch", "flags": late["flags"] + "|CLONE_PARENT_SETTID"}) == [
        "EBADF{pidfd=closed}"]
    assert due({"size": 88, "flags": "CLONE_DETACHED|CLONE_PIDFD", "pidfd": "scratch"}) == ["EINVAL"]


def test_a_wrong_effect_is_named_by_its_rule() -> None:
    prediction = predict(parse({"size": 88, "flags": "CLONE_PARENT_SETTID|CLONE_PIDFD", "pidfd": "scratch",
                                "parent_tid": "scratch", "exit_signal": 10}), ROOT)
    assert prediction.rule_for("success{pidfd=child,parent_tid=pid,signal=SIGUSR1}") == "success"
    assert prediction.rule_for("success{pidfd=child,signal=SIGUSR1}") == "effect.parent_tid"
    assert prediction.rule_for("success{parent_tid=pid,signal=SIGUSR1}") == "effect.pidfd"
    assert prediction.rule_for("success{pidfd=child,parent_tid=pid,signal=SIGCHLD}") == "effect.exit_signal"
    assert prediction.rule_for("success{pidfd=other,parent_tid=pid,signal=SIGUSR1}") == "effect.pidfd"
    assert prediction.rule_for("EINVAL") == "success"  # the errno itself is wrong: its own rule
    plain = predict(parse({"size": 88, "parent_tid": "scratch"}), ROOT)
    assert plain.rule_for("success{parent_tid=pid,signal=none}") == "effect.untouched"


def test_the_closest_of_several_allowed_effects_names_the_rule() -> None:
    thread = parse({"size": 88, "flags": "CLONE_THREAD|CLONE_SIGHAND|CLONE_VM|CLONE_PIDFD|CLONE_PARENT_SETTID",
                    "pidfd": "scratch", "parent_tid": "scratch"})
    assert predict(thread, ROOT).rule_for("success{pidfd=child,signal=none}") == "effect.parent_tid"
    assert effects.first_difference("signal=none", ["pidfd=gone,signal=none", "pidfd=child,signal=none"]) == (
        "effect.pidfd")
    assert effects.first_difference("parent_tid=pid,signal=none", ["signal=none"]) == "effect.untouched"


def test_effect_text_round_trips() -> None:
    text = "pidfd=child,parent_tid=pid,signal=SIGCHLD"
    assert effects.render(effects.parse(text)) == text
    assert effects.effects_of("success{" + text + "}") == text and effects.effects_of("EINVAL") == ""
    assert effects.signal_name(17) == "SIGCHLD" and effects.signal_name(40) == "SIG40"


def test_an_init_sharing_our_handlers_leaves_sigchld_ignored() -> None:
    # kernel/pid_namespace.c zap_pid_ns_processes(): the dying init sets SIGCHLD to SIG_IGN
    # in its sighand, ours too with CLONE_SIGHAND; do_notify_parent() then reaps a SIGCHLD
    # child itself and sends nothing. Another exit_signal is still sent.
    case = {"size": 88, "flags": "CLONE_VM|CLONE_SIGHAND|CLONE_NEWPID|CLONE_PIDFD", "pidfd": "scratch"}
    assert due({**case, "exit_signal": "SIGCHLD"}) == ["success{pidfd=child,signal=none}",
                                                      "success{pidfd=gone,signal=none}"]
    assert due({**case, "exit_signal": "SIGUSR1"}) == ["success{pidfd=child,signal=SIGUSR1,ns=pid}"]


def test_a_thread_cannot_leave_its_domain() -> None:
    # cgroup_attach_permissions(): a thread into another domain cgroup is EOPNOTSUPP, after
    # copy_process() wrote the pidfd number.
    thread = {"size": 88, "flags": "CLONE_THREAD|CLONE_SIGHAND|CLONE_VM|CLONE_INTO_CGROUP|CLONE_PIDFD",
              "pidfd": "scratch", "cgroup": "cgroup2"}
    assert predict(parse(thread), ROOT).rules == {"ENOTSUP{pidfd=closed}": "cgroup.thread_other_domain"}
