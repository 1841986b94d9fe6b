/*
 * The executor: places each case's struct image, calls the real clone3 and records what
 * it returned. It owns no processes beyond the ones a call creates, and it settles each of
 * those (reaps it, waits for it, closes its pidfd) before the next case, so that one case
 * can never change the outcome of another.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "c3.h"

#ifndef __NR_clone3
#define __NR_clone3 435
#endif
#ifndef __NR_close_range
#define __NR_close_range 436
#endif
#ifndef __NR_pidfd_open
#define __NR_pidfd_open 434
#endif
#define PF_EXITING 0x4 /* include/linux/sched.h: the task is in do_exit() */

/*
 * The child path must not touch memory: with CLONE_VM it shares the executor's pages,
 * with a caller-chosen stack (or the executor's own live stack) and perhaps a bogus TLS,
 * so a single push or a return into C would corrupt or crash the executor. The child
 * therefore issues SYS_exit from the instruction after the syscall, using registers only.
 * SYS_exit, not exit_group: with CLONE_THREAD, exit_group would take the executor along.
 */
long c3_clone3(void *args, uint64_t size, const struct timespec *linger)
{
	/* `linger` keeps a CLONE_VFORK child in user space a while before it exits, with
	 * nanosleep() on a timespec the kernel only reads: a kernel that does not wait for the
	 * child then returns while it is still there, where a child that exits at once could
	 * look waited for by luck. */
#if defined(__x86_64__)
	register const struct timespec *r12 __asm__("r12") = linger;
	long ret;
	__asm__ volatile("syscall\n\t"
			 "test %%rax, %%rax\n\t"
			 "jnz 2f\n\t"
			 "test %%r12, %%r12\n\t"
			 "jz 1f\n\t"
			 "mov $35, %%eax\n\t" /* __NR_nanosleep */
			 "mov %%r12, %%rdi\n\t"
			 "xor %%esi, %%esi\n\t"
			 "syscall\n\t"
			 "1:\n\t"
			 "mov $60, %%eax\n\t" /* __NR_exit */
			 "xor %%edi, %%edi\n\t"
			 "syscall\n\t"
			 "2:\n\t"
			 : "=a"(ret)
			 : "0"((long)__NR_clone3), "D"(args), "S"(size), "r"(r12)
			 : "rcx", "r11", "memory");
	return ret;
#elif defined(__aarch64__)
	register long x0 __asm__("x0") = (long)args;
	register long x1 __asm__("x1") = (long)size;
	register long x8 __asm__("x8") = __NR_clone3;
	register const struct timespec *x9 __asm__("x9") = linger;
	__asm__ volatile("svc #0\n\t"
			 "cbnz x0, 2f\n\t"
			 "cbz x9, 1f\n\t"
			 "mov x8, #101\n\t" /* __NR_nanosleep */
			 "mov x0, x9\n\t"
			 "mov x1, #0\n\t"
			 "svc #0\n\t"
			 "1:\n\t"
			 "mov x8, #93\n\t" /* __NR_exit */
			 "mov x0, #0\n\t"
			 "svc #0\n\t"
			 "2:\n\t"
			 : "+r"(x0), "+r"(x8), "+r"(x1)
			 : "r"(x9)
			 : "memory");
	return x0;
#else
	/* No register-only child path for this arch: a CLONE_VM child returns through
	 * libc and may corrupt the executor, which the sandbox then reports as a crash. */
	long ret = syscall(__NR_clone3, args, size);
	if (ret == 0) {
		if (linger)
			nanosleep(linger, NULL);
		syscall(__NR_exit, 0);
	}
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
		 * on an earlier case; an output slot starts as the marker instead. */
		memset(slot, 0, C3_SCRATCH_ZEROED);
		if (field >= 1 && field <= C3_OUT_WORDS)
			memcpy(slot, &(uint64_t){C3_MARKER}, 8);
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
static uint64_t settle(long child, uint64_t flags, const struct c3_env *env)
{
	static const struct timespec zero;
	uint64_t all = ~0ULL, received = 0;
	int sig;

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
	 * queue and would eat into the user's RLIMIT_SIGPENDING. Drain them, and say which
	 * came: the child was reaped above, and do_notify_parent() queues the signal before
	 * the child can be reaped, so nothing is still on its way. */
	while ((sig = (int)syscall(SYS_rt_sigtimedwait, &all, NULL, &zero, sizeof(all))) > 0)
		received |= 1ULL << (sig - 1);
	/* A child that shared our handlers and was a pid namespace's init set SIGCHLD to
	 * SIG_IGN on its way out (zap_pid_ns_processes()), for us too: every later SIGCHLD
	 * child would be reaped by the kernel, unseen. Each case starts as the first did; only
	 * after the drain, since SIG_DFL discards a pending SIGCHLD (its default is to ignore). */
	if (flags & C3_CLONE_SIGHAND)
		signal(SIGCHLD, SIG_DFL);
	return received;
}

/* --- effects: what a successful call did, seen from the caller ------------------------
 *
 * /proc shows pids in the namespace it was mounted for, which is not the executor's in the
 * sandbox; the NSpid lines of /proc/self/status and of a pidfd's fdinfo list a pid at every
 * level from that one down, so the executor's own level is an index into them. A child
 * that exited is a zombie until settle() reaps it, and a zombie still shows its pid
 * namespace, its user namespace (its credentials), its cgroup and its task flags; the other
 * namespaces go with its nsproxy in do_exit(), so nobody can see them any more.
 */
/*
 * No strtol() or snprintf() here: the executor runs with the caller's locale data shed
 * (c3_shed_inherited_memory() keeps libc's code, not the locale archive it points into),
 * and both read it. These two know decimal numbers only, which is all /proc needs.
 */
static long decimal(const char *p, const char **end)
{
	const char *start = p, *digits;
	long sign = 1, v = 0;

	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '-') {
		sign = -1;
		p++;
	}
	for (digits = p; *p >= '0' && *p <= '9'; p++)
		v = v * 10 + (*p - '0');
	*end = p == digits ? start : p; /* no number: nothing consumed */
	return sign * v;
}

/* "/proc/" + n + rest, into buf (64 bytes: a pid and a short rest always fit). */
static const char *proc_path(char *buf, const char *head, long n, const char *rest)
{
	char digits[24];
	int i = 0;

	do
		digits[i++] = (char)('0' + n % 10);
	while ((n /= 10) > 0);
	strcpy(buf, head);
	for (char *p = buf + strlen(buf); i > 0;)
		*p++ = digits[--i], *p = 0;
	strcat(buf, rest);
	return buf;
}

static int read_text(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = -1;

	if (fd >= 0) {
		n = read(fd, buf, len - 1);
		close(fd);
	}
	buf[n > 0 ? n : 0] = 0;
	return n > 0 ? 0 : -1;
}

/* Entry `index` of the NSpid line in `text`; `fallback` where there is none. */
static long nspid(const char *text, int index, long fallback)
{
	const char *p = strstr(text, "\nNSpid:"), *end;

	if (!p)
		return fallback;
	p += 7;
	for (int i = 0;; i++) {
		long v = decimal(p, &end);

		if (end == p)
			return fallback;
		if (i == index)
			return v;
		p = end;
	}
}

/* The executor's level in procfs's NSpid lists, found once: -1 where procfs shows none
 * (not mounted, or a kernel before 4.1), and then nothing is looked at through it. */
static int own_level(void)
{
	static int level = -2;
	char text[2048];

	if (level == -2) {
		level = -1;
		if (read_text("/proc/self/status", text, sizeof(text)) == 0 && strstr(text, "\nNSpid:"))
			for (const char *p = strstr(text, "\nNSpid:") + 7; *p && *p != '\n'; p++)
				level += *p == '\t' || *p == ' ';
	}
	return level;
}

/* What fd, a pidfd, names: its pid at the executor's level, *host = at procfs's, or C3_PIDFD_*. */
static int32_t pidfd_names(int fd, long *host)
{
	char path[64], text[1024];
	long pid;

	if (read_text(proc_path(path, "/proc/self/fdinfo/", fd, ""), text, sizeof(text)))
		return C3_PIDFD_CLOSED;
	if (!strstr(text, "\nPid:"))
		return C3_PIDFD_NOT_PIDFD;
	pid = nspid(text, own_level(), C3_PIDFD_NOT_PIDFD);
	*host = nspid(text, 0, -1);
	return pid <= 0 ? C3_PIDFD_GONE : (int32_t)pid;
}

static int same_link(const char *a, const char *b)
{
	char la[128], lb[128];
	ssize_t na = readlink(a, la, sizeof(la)), nb = readlink(b, lb, sizeof(lb));

	return na > 0 && na == nb && !memcmp(la, lb, (size_t)na);
}

/* Whether the child (procfs pid `host`) is in the cgroup v2 directory open as `fd`. */
static int in_cgroup(long host, int fd)
{
	char path[64], text[4096], dir[PATH_MAX];
	const char *line;
	ssize_t n;
	size_t len;

	if (read_text(proc_path(path, "/proc/", host, "/cgroup"), text, sizeof(text)))
		return 0;
	line = !strncmp(text, "0::", 3) ? text + 3 : strstr(text, "\n0::");
	if (!line || (n = readlink(proc_path(path, "/proc/self/fd/", fd, ""), dir, sizeof(dir) - 1)) <= 0)
		return 0;
	dir[n] = 0;
	line += line == text + 3 ? 0 : 4;
	len = strcspn(line, "\n");
	/* The child's path is relative to its cgroup namespace's root: the directory's ends with it. */
	return len > 1 && (size_t)n >= len && !strncmp(dir + n - len, line, len);
}

/*
 * After a successful call, before settle() reaps the child: what the pidfd names, whether a
 * CLONE_VFORK child was already exiting, its cgroup and namespaces. A thread or a
 * CLONE_PARENT child may be reaped at any moment by someone else, and so may a child the
 * kernel reaps itself (see settle()): only the pidfd is looked at for them (and may name a
 * reaped task).
 */
static void observe(struct c3_outcome *o, long child, uint64_t flags, uint64_t exit_signal,
		    const struct c3_env *env)
{
	const uint64_t wants = C3_CLONE_VFORK | C3_CLONE_INTO_CGROUP | C3_CLONE_NEWPID | C3_CLONE_NEWUSER;
	long host = -1;
	int fd = -1;

	if (own_level() < 0)
		return;
	if (flags & C3_CLONE_PIDFD && o->seen & (C3_SEEN_WORD << 0) && o->word[0] >> 32 == C3_MARKER >> 32) {
		fd = (int)(int32_t)o->word[0];
		o->pidfd_pid = pidfd_names(fd, &host);
		o->seen |= C3_SEEN_PIDFD;
	}
	if (flags & (C3_CLONE_THREAD | C3_CLONE_PARENT) || !(flags & wants))
		return;
	if (flags & C3_CLONE_SIGHAND && flags & C3_CLONE_NEWPID && exit_signal == SIGCHLD)
		return;
	if (host <= 0) {
		int own = (int)syscall(__NR_pidfd_open, (pid_t)child, 0);

		if (own >= 0) {
			pidfd_names(own, &host);
			close(own);
		}
	}
	if (host <= 0)
		return;
	if (flags & C3_CLONE_VFORK) {
		char path[64], text[1024], *p;
		const char *end;

		/* Field 9, after the comm in parentheses: the task's flags. */
		if (read_text(proc_path(path, "/proc/", host, "/stat"), text, sizeof(text)) == 0 &&
		    (p = strrchr(text, ')'))) {
			for (int field = 2; field < 9 && p; field++)
				p = strchr(p + 1, ' ');
			o->vfork = p && decimal(p + 1, &end) & PF_EXITING;
			o->seen |= C3_SEEN_VFORK;
		}
	}
	if (flags & C3_CLONE_INTO_CGROUP && env->cgroup_fd >= 0) {
		o->cgroup = (uint8_t)in_cgroup(host, env->cgroup_fd);
		o->seen |= C3_SEEN_CGROUP;
	}
	if (flags & (C3_CLONE_NEWPID | C3_CLONE_NEWUSER)) {
		char path[64];

		o->ns = !same_link(proc_path(path, "/proc/", host, "/ns/pid"), "/proc/self/ns/pid") * C3_NS_PID;
		o->ns |= !same_link(proc_path(path, "/proc/", host, "/ns/user"), "/proc/self/ns/user") * C3_NS_USER;
		o->seen |= C3_SEEN_NS;
	}
}

/* set_tid's pid for the executor's own level (the innermost, or the next with CLONE_NEWPID),
 * as the kernel will read it; 0 where the case leaves that level to the kernel. A size that
 * ends inside set_tid_size passes its low bytes only, as copy_struct_from_user() copies them. */
static int32_t requested_pid(const struct c3_case *c, const uint8_t *buf, size_t readable, const int32_t *pids)
{
	uint64_t flags = 0, count = 0, level;

	if (c->ref[8] != C3_REF_SET_TID_LIST || readable <= 72)
		return 0;
	memcpy(&flags, buf, 8);
	memcpy(&count, buf + 72, readable < 80 ? readable - 72 : 8);
	level = (flags & C3_CLONE_NEWPID) ? 1 : 0;
	return count > level && level < c->nset_tid ? pids[level] : 0;
}

static void append(char *buf, size_t len, const char *name, const char *value)
{
	size_t used = strlen(buf);

	snprintf(buf + used, len - used, "%s%s=%s", used ? "," : "", name, value);
}

/* A written pid word: the child's pid ("pid", which is also what clone3 returned), 0, 1, or
 * something else. The kernel writes 4 bytes: a word whose upper half changed was clobbered. */
static const char *pid_word(uint64_t word, int64_t ret)
{
	int32_t low = (int32_t)word;

	if (word >> 32 != C3_MARKER >> 32)
		return "clobbered";
	return low == ret ? "pid" : low == 0 ? "0" : low == 1 ? "1" : "other";
}

/* "SIGCHLD" for 17: the name C3_SIGNAL_NAMES gives it (signals 1..31), "SIG34" past them. */
static void signal_name(int sig, char *buf, size_t len)
{
	const char *p = C3_SIGNAL_NAMES;

	for (int i = 1; i < sig && p; i++)
		p = strchr(p + 1, ' ');
	if (sig < 32 && p)
		snprintf(buf, len, "SIG%.*s", (int)strcspn(p + (*p == ' '), " "), p + (*p == ' '));
	else
		snprintf(buf, len, "SIG%d", sig);
}

/*
 * The effects in words, in a fixed order: pidfd, child_tid, parent_tid (the words written),
 * pid (set_tid honoured), signal, vfork, cgroup, ns. A word left as the marker is left out:
 * nothing was written there. The oracle predicts this very text (model/effects.py).
 */
char *c3_effects_text(const struct c3_outcome *o, char *buf, size_t len)
{
	static const char *const words[C3_OUT_WORDS] = {"pidfd", "child_tid", "parent_tid"};
	char sigs[C3_EFFECTS_TEXT] = "";

	buf[0] = 0;
	if (o->kind == C3_OUT_KILLED_BY_CHILD) {
		append(buf, len, "signal", "SIGKILL");
		return buf;
	}
	for (int i = 0; i < C3_OUT_WORDS; i++) {
		if (!(o->seen & (C3_SEEN_WORD << i)) || o->word[i] == C3_MARKER)
			continue;
		if (i > 0 || o->word[i] >> 32 != C3_MARKER >> 32)
			append(buf, len, words[i], pid_word(o->word[i], o->ret));
		else if (!(o->seen & C3_SEEN_PIDFD))
			append(buf, len, words[i], "fd");
		else
			append(buf, len, words[i], o->pidfd_pid == o->ret ? "child" : o->pidfd_pid == C3_PIDFD_GONE ? "gone"
				: o->pidfd_pid == C3_PIDFD_CLOSED ? "closed" : o->pidfd_pid == C3_PIDFD_NOT_PIDFD ? "notpidfd"
				: "other");
	}
	if (o->seen & C3_SEEN_PID)
		append(buf, len, "pid", o->ret == o->requested_pid ? "set_tid" : "other");
	if (o->seen & C3_SEEN_SIGNALS) {
		for (int sig = 1; sig <= 64; sig++) {
			size_t used = strlen(sigs);

			if (o->signals >> (sig - 1) & 1) {
				if (used)
					sigs[used++] = '+';
				signal_name(sig, sigs + used, sizeof(sigs) - used);
			}
		}
		append(buf, len, "signal", sigs[0] ? sigs : "none");
	}
	if (o->seen & C3_SEEN_VFORK)
		append(buf, len, "vfork", o->vfork ? "waited" : "running");
	if (o->seen & C3_SEEN_CGROUP)
		append(buf, len, "cgroup", o->cgroup ? "in" : "out");
	if (o->seen & C3_SEEN_NS)
		append(buf, len, "ns", o->ns == (C3_NS_PID | C3_NS_USER) ? "pid+user" : o->ns == C3_NS_PID ? "pid"
			: o->ns == C3_NS_USER ? "user" : "none");
	return buf;
}

static const struct timespec vfork_linger = {0, C3_LINGER_NS};

static size_t align8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

static size_t record_len(const struct c3_case *c)
{
	return sizeof(*c) + align8(c->nbytes) + align8(c->nset_tid * sizeof(int32_t));
}

/* The output slots of "scratch" pointers the kernel was passed, as they are after the call. */
static void read_words(struct c3_outcome *o, const struct c3_case *c, size_t reach)
{
	for (int w = 0; w < C3_OUT_WORDS; w++) {
		int field = w + 1;

		if (c->ref[field] != C3_REF_SCRATCH || (size_t)field * 8 + 8 > reach)
			continue;
		memcpy(&o->word[w], arena.scratch + (size_t)field * C3_SCRATCH_SLOT, 8);
		o->seen |= C3_SEEN_WORD << w;
	}
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
	/* A SIGCHLD ignored by whoever started us would make the kernel reap SIGCHLD children
	 * itself and send nothing (do_notify_parent()): exit_signal would not be observable. */
	signal(SIGCHLD, SIG_DFL);
	if (!arena.mapped && (err = arena_init()))
		return err;
	for (uint32_t i = 0; i < n; i++) {
		const struct c3_case *c = (const void *)(blob + pos);
		const uint8_t *image = blob + pos + sizeof(*c);
		const int32_t *pids = (const void *)(image + align8(c->nbytes));
		uint64_t exit_signal, flags;
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
		/* The flags as the case gave them: a planted fault may rewrite the struct. */
		flags = read_field(buf, readable, C3_OFF_FLAGS);
		__atomic_store_n(&out[i].in_call, 1, __ATOMIC_RELAXED);
		ret = c3_clone3(buf, c->size, flags & C3_CLONE_VFORK ? &vfork_linger : NULL);
		__atomic_store_n(&out[i].in_call, 0, __ATOMIC_RELAXED);
		out[i].ret = ret;
		if (c->nrefs)
			read_words(&out[i], c, readable);
		if (ret > 0) {
			if (c->ref[8] == C3_REF_SET_TID_LIST && (out[i].requested_pid = requested_pid(c, buf, readable, pids)))
				out[i].seen |= C3_SEEN_PID;
			observe(&out[i], ret, flags, exit_signal, env);
			out[i].signals = settle(ret, read_field(buf, readable, C3_OFF_FLAGS), env);
			out[i].seen |= C3_SEEN_SIGNALS;
			/* Again, now that the child is gone: child_tid is written by the child. */
			if (c->nrefs)
				read_words(&out[i], c, readable);
		} else if (out[i].seen & C3_SEEN_WORD && out[i].word[0] != C3_MARKER && own_level() >= 0) {
			long host;

			/* An error path that had already written a pidfd number (cgroup_can_fork()
			 * fails after it): the fd must be gone again. */
			out[i].pidfd_pid = pidfd_names((int)(int32_t)out[i].word[0], &host);
			out[i].seen |= C3_SEEN_PIDFD;
			close_created_fds(env);
		}
		__atomic_store_n(&out[i].kind, C3_OUT_RETURNED, __ATOMIC_RELEASE);
	}
	*cursor = n;
	return 0;
}
