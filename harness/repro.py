"""Standalone C reproducers: one case as a C program that needs nothing but a compiler.

``cc repro.c && ./a.out`` places the struct as the case says, calls the raw clone3 (with
the executor's register-only child path), prints what it returned, and exits 0 when that
is one of the expected outcomes, 1 when not.
"""

from __future__ import annotations

import errno

from . import abi
from .case import CGROUP_RESOURCE, SET_TID_LIST, Case

_TEMPLATE = r"""/*
 * clone3-fuzz reproducer: @title@
 * case: @case@
 * expected: @expected@
 * Build and run: cc repro.c && ./a.out [CGROUP_V2_DIR]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static const unsigned char image[@nimage@] = {@image@};
static const int32_t pids[@npids@] __attribute__((unused)) = {@pids@};
static const char *expected[] = {@expected_c@};
static uint8_t scratch[11][16384] __attribute__((aligned(4096), unused));

/* The child returns nowhere: it exits from registers alone, as in clone3-fuzz's executor. */
static long raw_clone3(void *args, uint64_t size)
{
#if defined(__x86_64__)
	long ret;
	__asm__ volatile("syscall\n\ttest %%rax, %%rax\n\tjnz 1f\n\tmov $60, %%eax\n\txor %%edi, %%edi\n\tsyscall\n1:\n\t"
			 : "=a"(ret) : "0"(435L), "D"(args), "S"(size) : "rcx", "r11", "memory");
	return ret;
#elif defined(__aarch64__)
	register long x0 __asm__("x0") = (long)args;
	register long x1 __asm__("x1") = (long)size;
	register long x8 __asm__("x8") = 435;
	__asm__ volatile("svc #0\n\tcbnz x0, 1f\n\tmov x8, #93\n\tsvc #0\n1:\n\t" : "+r"(x0) : "r"(x1), "r"(x8) : "memory");
	return x0;
#else
	long ret = syscall(435, args, size);
	if (ret == 0)
		syscall(SYS_exit, 0);
	return ret < 0 ? -errno : ret;
#endif
}

int main(int argc, char **argv)
{
	long page = sysconf(_SC_PAGESIZE), ret;
	uint64_t size = @size@ULL, readable = @readable@ULL, len = sizeof(image), all = ~0ULL;
	uint8_t *region = mmap(NULL, 65536 + 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t *guard = region + 65536 + page, *buf;
	const char *cgroup_dir = argc > 1 ? argv[1] : "/sys/fs/cgroup";
	int cgroup_fd = -1;
	uint64_t value = 0;

	(void)cgroup_dir;
	(void)cgroup_fd;
	(void)value;
	mprotect(guard, page, PROT_NONE);
	@placement@
	if (len > size)
		len = size;
	if (buf && len > readable)
		len = readable;
	if (buf)
		memcpy(buf, image, len);
@refs@
	/* Every signal blocked, as in the executor: the child's exit_signal stays pending. */
	syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, NULL, sizeof(all));
	fflush(stdout);
	ret = raw_clone3(buf, size);
	if (ret > 0)
		waitpid((pid_t)ret, NULL, __WALL);
	const char *observed = ret > 0 ? "success" : strerrorname_np((int)-ret);
	printf("%s\n", observed ? observed : "unknown errno");
	for (size_t i = 0; i < sizeof(expected) / sizeof(*expected); i++)
		if (observed && !strcmp(observed, expected[i]))
			return 0;
	fprintf(stderr, "expected @expected@\n");
	return 1;
}
"""


def _placement(case: Case) -> tuple[str, int]:
    if case.memory == "null":
        return "buf = NULL;", 0
    if case.memory == "unmapped":
        return "buf = guard;", 0
    if case.memory == "guard":
        readable = case.placed_readable
        return f"buf = guard - {readable};", readable
    return "buf = region;", 65536


def _refs(case: Case) -> str:
    lines = []
    for index, name in enumerate(abi.FIELDS):
        ref = case.refs.get(name)
        if ref is None:
            continue
        value = {
            "scratch": f"(uint64_t)(uintptr_t)scratch[{index}]",
            "unmapped": "(uint64_t)(uintptr_t)guard",
            "kernel": "0xffffffff80000000ULL",
            SET_TID_LIST: f"(memcpy(scratch[{index}], pids, sizeof(pids)), (uint64_t)(uintptr_t)scratch[{index}])",
            CGROUP_RESOURCE: "(uint64_t)(cgroup_fd = open(cgroup_dir, O_RDONLY | O_DIRECTORY))",
        }[ref]
        offset = abi.OFFSETS[name]
        lines.append(f"\tvalue = {value};\n"
                     f"\tif (buf && len > {offset})\n"
                     f"\t\tmemcpy(buf + {offset}, &value, len - {offset} < 8 ? len - {offset} : 8);")
    return "\n".join(lines)


def render(case: Case, expected: list[str], title: str) -> str:
    """The C source reproducing ``case``; ``expected`` lists the acceptable outcomes."""
    image = case.image()
    placement, readable = _placement(case)
    names = [e for e in expected if e == "success" or e in errno.errorcode.values()]
    fields = dict(
        title=title.replace("*/", "* /"), case=case.dumps().replace("*/", "* /"), expected=", ".join(expected),
        nimage=max(len(image), 1), image=",".join(str(b) for b in image) or "0",
        npids=max(len(case.set_tid_pids), 1), pids=",".join(map(str, case.set_tid_pids)) or "0",
        expected_c=", ".join(f'"{e}"' for e in names) or '""', size=case.size, readable=readable,
        placement=placement, refs=_refs(case),
    )
    text = _TEMPLATE
    for key, value in fields.items():
        text = text.replace(f"@{key}@", str(value))
    return text
