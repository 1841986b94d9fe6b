/*
 * The executor: places each case's struct image, calls the real clone3 and records what
 * it returned. It owns no processes beyond the ones a call creates, and it settles each of
 * those (reaps it, waits for it, closes its pidfd) before the next case, so that one case
 * can never change the outcome of another.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "c3.h"

#ifndef __NR_clone3
#define __NR_clone3 435
#endif
#ifndef __NR_close_range
#define __NR_close_range 436
#endif

/*
 * The child path must not touch memory: with CLONE_VM it shares the executor's pages,
 * with a caller-chosen stack (or the executor's own live stack) and perhaps a bogus TLS,
 * so a single push or a return into C would corrupt or crash the executor. The child
 * therefore issues SYS_exit from the instruction after the syscall, using registers only.
 * SYS_exit, not exit_group: with CLONE_THREAD, exit_group would take the executor along.
 */
long c3_clone3(void *args, uint64_t size)
{
#if defined(__x86_64__)
	long ret;
	__asm__ volatile("syscall\n\t"
			 "test %%rax, %%rax\n\t"
			 "jnz 1f\n\t"
			 "mov $60, %%eax\n\t" /* __NR_exit */
			 "xor %%edi, %%edi\n\t"
			 "syscall\n\t"
			 "1:\n\t"
			 : "=a"(ret)
			 : "0"((long)__NR_clone3), "D"(args), "S"(size)
			 : "rcx", "r11", "memory");
	return ret;
#elif defined(__aarch64__)
	register long x0 __asm__("x0") = (long)args;
	register long x1 __asm__("x1") = (long)size;
	register long x8 __asm__("x8") = __NR_clone3;
	__asm__ volatile("svc #0\n\t"
			 "cbnz x0, 1f\n\t"
			 "mov x8, #93\n\t" /* __NR_exit */
			 "svc #0\n\t"
			 "1:\n\t"
			 : "+r"(x0)
			 : "r"(x1), "r"(x8)
			 : "memory");
	return x0;
#else
	/* No register-only child path for this arch: a CLONE_VM child returns through
	 * libc and may corrupt the executor, which the sandbox then reports as a crash. */
	long ret = syscall(__NR_clone3, args, size);
	if (ret == 0)
		syscall(__NR_exit, 0);
	return ret < 0 ? -errno : ret;
#endif
}

/* The memory cases are placed in, set up once per process. */
static struct {
	uint8_t *mapped;    /* C3_MAX_IMAGE + a page, all readable */
	uint8_t *guard;     /* the first byte of an inaccessible page */
	uint8_t *scratch;   /* C3_NFIELDS slots of C3_SCRATCH_SLOT bytes */
	size_t mapped_dirty; /* bytes of `mapped` that may be nonzero */
} arena;

static int arena_init(void)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t image = (C3_MAX_IMAGE + page - 1) / page * page;
	size_t mapped_len = image + page;
	size_t total = mapped_len + image + page + C3_NFIELDS * C3_SCRATCH_SLOT;
	uint8_t *base = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (base == MAP_FAILED)
		return -errno;
	arena.mapped = base;
	arena.guard = base + mapped_len + image;
	arena.scratch = arena.guard + page;
	if (mprotect(arena.guard, page, PROT_NONE))
		return -errno;
	return 0;
}

static uint64_t kernel_half_address(void)
{
	return sizeof(void *) == 8 ? 0xffffffff80000000ULL : 0xc0000000ULL;
}

static uint64_t resolve(const struct c3_case *c, int field, const int32_t *pids,
			const struct c3_env *env)
{
	uint8_t *slot = arena.scratch + (size_t)field * C3_SCRATCH_SLOT;

	switch (c->ref[field]) {
	case C3_REF_SCRATCH:
		/* Zeroed, so that what the kernel reads there (a set_tid array) never depends
		 * on an earlier case. */
		memset(slot, 0, C3_SCRATCH_ZEROED);
		return (uintptr_t)slot;
	case C3_REF_UNMAPPED:
		return (uintptr_t)arena.guard;
	case C3_REF_KERNEL:
		return kernel_half_address();
	case C3_REF_SET_TID_LIST:
		memset(slot, 0, C3_SCRATCH_ZEROED);
		memcpy(slot, pids, c->nset_tid * sizeof(int32_t));
		return (uintptr_t)slot;
	case C3_REF_CGROUP2:
		return (uint64_t)(int64_t)env->cgroup_fd;
	}
	return 0;
}

/*
 * Lays the image out as the case's memory key says. Returns the pointer for the call
 * and sets *readable to how many bytes from it the executor may read back.
 */
static uint8_t *place(const struct c3_case *c, const uint8_t *image, const int32_t *pids,
		      const struct c3_env *env, size_t *readable)
{
	size_t cap, len, reach;
	uint8_t *buf;

	switch (c->memory) {
	case C3_MEM_NULL:
		*readable = 0;
		return NULL;
	case C3_MEM_UNMAPPED:
		*readable = 0;
		return arena.guard;
	case C3_MEM_GUARD:
		cap = c->readable;
		buf = arena.guard - cap;
		break;
	default:
		cap = C3_MAX_IMAGE;
		buf = arena.mapped;
	}
	/* The image comes without its trailing zeros; the kernel may read `reach` bytes. */
	reach = c->size < cap ? (size_t)c->size : cap;
	len = c->nbytes < reach ? c->nbytes : reach;
	memcpy(buf, image, len);
	if (c->memory == C3_MEM_GUARD) {
		memset(buf + len, 0, cap - len);
	} else {
		/* Only what an earlier case dirtied needs clearing: a full clear of the
		 * arena would cost more than a rejected clone3 does. */
		if (arena.mapped_dirty > len)
			memset(buf + len, 0, arena.mapped_dirty - len);
		arena.mapped_dirty = len;
	}
	for (int f = 0; f < C3_NFIELDS && c->nrefs; f++) {
		size_t off = (size_t)f * 8, n;
		uint64_t v;

		if (c->ref[f] == C3_REF_LITERAL || off >= reach)
			continue;
		v = resolve(c, f, pids, env);
		/* A size that ends inside the field passes only its low bytes. */
		n = reach - off < 8 ? reach - off : 8;
		memcpy(buf + off, &v, n);
		if (c->memory != C3_MEM_GUARD && off + n > arena.mapped_dirty)
			arena.mapped_dirty = off + n;
	}
	*readable = reach;
	return buf;
}

static uint64_t read_field(const uint8_t *buf, size_t readable, size_t off)
{
	uint64_t v = 0;

	if (buf && off + 8 <= readable)
		memcpy(&v, buf + off, 8);
	return v;
}

static void close_created_fds(const struct c3_env *env)
{
	unsigned int first = env->cgroup_fd > 2 ? (unsigned int)env->cgroup_fd + 1 : 3;

	if (syscall(__NR_close_range, first, ~0U, 0) == 0)
		return;
	for (unsigned int fd = first; fd < 1024; fd++)
		close((int)fd);
}

/*
 * After a successful call: make sure the new task is gone, and that nothing it left behind
 * (a pidfd, a pending exit signal) survives into the next case.
 */
static void settle(long child, uint64_t flags, const struct c3_env *env)
{
	static const struct timespec zero;
	uint64_t all = ~0ULL;

	if (flags & C3_CLONE_THREAD) {
		/* A thread cannot be waited for; it exits at once, so poll until it is gone. */
		while (syscall(SYS_tgkill, getpid(), (pid_t)child, 0) == 0)
			sched_yield();
	} else if (flags & C3_CLONE_PARENT) {
		/* The child belongs to our parent (the sandbox's reaper). exit_signal is 0 with
		 * CLONE_PARENT, so nobody told the reaper: wake it, and wait for the reaping so
		 * that zombies never pile up against the pid or RLIMIT_NPROC limits. */
		kill(getppid(), SIGCHLD);
		while (kill((pid_t)child, 0) == 0)
			sched_yield();
	} else {
		/* __WALL: a child whose exit_signal is not SIGCHLD is a "clone" child. */
		while (waitpid((pid_t)child, NULL, __WALL) < 0 && errno == EINTR)
			;
	}
	if (flags & C3_CLONE_PIDFD)
		close_created_fds(env);
	/* Every signal is blocked, so a child's exit_signal stays pending; real-time ones
	 * queue and would eat into the user's RLIMIT_SIGPENDING. Drain them. */
	while (syscall(SYS_rt_sigtimedwait, &all, NULL, &zero, sizeof(all)) > 0)
		;
}

static size_t align8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

static size_t record_len(const struct c3_case *c)
{
	return sizeof(*c) + align8(c->nbytes) + align8(c->nset_tid * sizeof(int32_t));
}

int c3_execute(const uint8_t *blob, size_t len, uint32_t first, uint32_t n,
	       struct c3_outcome *out, volatile uint32_t *cursor, const struct c3_env *env)
{
	uint64_t all = ~0ULL;
	size_t pos = 0;
	int err;

	/* Block every signal, 32 and 33 included (glibc's sigprocmask refuses those): an
	 * exit_signal can be any of 1..64, and all but SIGKILL and SIGSTOP must stay
	 * pending rather than run a handler or a default action. */
	if (syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, NULL, sizeof(all)))
		return -errno;
	if (!arena.mapped && (err = arena_init()))
		return err;
	for (uint32_t i = 0; i < n; i++) {
		const struct c3_case *c = (const void *)(blob + pos);
		const uint8_t *image = blob + pos + sizeof(*c);
		const int32_t *pids = (const void *)(image + align8(c->nbytes));
		uint64_t exit_signal;
		size_t readable;
		uint8_t *buf;
		long ret;

		if (pos + sizeof(*c) > len || pos + record_len(c) > len ||
		    c->readable > C3_MAX_IMAGE || c->nset_tid > C3_MAX_SET_TID)
			return -EINVAL;
		pos += record_len(c);
		if (i < first)
			continue;
		*cursor = i;
		buf = place(c, image, pids, env, &readable);
		exit_signal = read_field(buf, readable, C3_OFF_EXIT_SIGNAL);
		out[i].child_signal = exit_signal <= INT32_MAX ? (int32_t)exit_signal : -1;
		ret = c3_clone3(buf, c->size);
		out[i].ret = ret;
		if (ret > 0)
			settle(ret, read_field(buf, readable, C3_OFF_FLAGS), env);
		__atomic_store_n(&out[i].kind, C3_OUT_RETURNED, __ATOMIC_RELEASE);
	}
	*cursor = n;
	return 0;
}
