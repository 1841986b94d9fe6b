/*
 * The sandbox: the process tree a batch runs in, so that whatever clone3 creates
 * (processes, threads, namespaces) never reaches the caller.
 *
 *     caller --clone(NEWPID[|NEWUSER])--> reaper (pid 1, subreaper) --clone--> executor
 *
 * - The reaper is init of a fresh pid namespace when the kernel lets us make one: when it
 *   exits, the kernel kills everything left in the namespace, so nothing a batch creates
 *   outlives it. Unprivileged callers get a user namespace around it, and the executor then
 *   drops every capability so that the kernel sees an unprivileged caller, as outside.
 * - The reaper is also a child subreaper, so a child re-parented by CLONE_PARENT (or
 *   orphaned by a dying executor) is reaped by us, and it runs no case itself: a pid-namespace
 *   init would make every CLONE_PARENT fail with EINVAL.
 * - The reaper restarts the executor after a crash or a timeout at the next case, so one
 *   bad case costs one outcome, not a batch.
 *
 * The caller is usually a Python interpreter. Between clone and _exit the children run only
 * this file's code: raw syscalls, no malloc, no stdio, no Python.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "c3.h"

#ifndef __NR_close_range
#define __NR_close_range 436
#endif
#define EXIT_SETUP_FAILED 67 /* the executor could not start: a harness error, not a case */
#define TICK_NS 20000000L    /* how often the reaper looks for a stalled case */
#define SHED_MIN (1UL << 20)  /* see shed_inherited_memory() */

/* What the caller, the reaper and the executor share. */
struct shared {
	volatile uint32_t cursor; /* the case in flight (c3_execute writes it) */
	int32_t error;            /* errno of a harness failure */
	uint32_t executors;
	struct c3_outcome out[];
};

static pid_t spawn(unsigned long flags)
{
	/* A raw clone, not fork(): fork() cannot create namespaces, and unshare() would
	 * change the caller's own pid_ns_for_children. */
	return (pid_t)syscall(SYS_clone, flags | SIGCHLD, NULL, NULL, NULL, NULL);
}

static void block_all_signals(void)
{
	uint64_t all = ~0ULL;

	syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, NULL, sizeof(all));
}

static int64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* capset()'s ABI (linux/capability.h), spelled out: musl's toolchains carry no kernel
 * headers, and a reproducer must build with any libc. */
#define C3_CAPABILITY_VERSION_3 0x20080522
struct c3_cap_header {
	uint32_t version;
	int pid;
};
struct c3_cap_data {
	uint32_t effective, permitted, inheritable;
};

static void drop_capabilities(void)
{
	struct c3_cap_header hdr = {C3_CAPABILITY_VERSION_3, 0};
	struct c3_cap_data data[2];

	memset(data, 0, sizeof(data));
	syscall(SYS_capset, &hdr, data);
}

/*
 * The executor is a fork of the caller, usually a Python interpreter whose heap runs to tens
 * of megabytes; every successful clone3 without CLONE_VM would copy its page tables, which
 * made a success case cost ten times what it costs from a small process. A clone3 child
 * never touches memory (see c3_clone3), so the large private mappings it would inherit
 * (the interpreter's heap and arenas) are marked MADV_DONTFORK. Small ones stay: among them
 * glibc's TLS with the rseq area, which the kernel writes on the child's way back to user
 * space (a child without it would die of SIGSEGV instead of exiting).
 */
void c3_shed_inherited_memory(void)
{
	static char maps[1 << 18];
	size_t len = 0;
	ssize_t r;
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return;
	while (len < sizeof(maps) - 1 && (r = read(fd, maps + len, sizeof(maps) - 1 - len)) > 0)
		len += (size_t)r;
	close(fd);
	maps[len] = 0;
	for (char *line = maps; line && *line;) {
		char *end, *next = strchr(line, '\n');
		unsigned long lo = strtoul(line, &end, 16), hi = strtoul(end + 1, &end, 16);
		const char *perms = end + 1;

		if (next)
			*next++ = 0;
		if (perms[1] == 'w' && perms[3] == 'p' && hi - lo >= SHED_MIN && !strstr(perms, "[stack]"))
			madvise((void *)lo, hi - lo, MADV_DONTFORK);
		line = next;
	}
}

static void executor_main(struct shared *sh, const uint8_t *blob, size_t len, uint32_t first,
			  uint32_t n, const struct c3_env *env, int isolation)
{
	/* No core files from crashes we provoke on purpose; the executor writes no files. */
	struct rlimit zero = {0, 0};
	int err;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	setrlimit(RLIMIT_CORE, &zero);
	setrlimit(RLIMIT_FSIZE, &zero);
	if (isolation == C3_ISO_USERNS)
		drop_capabilities();
#ifndef C3_REPRO /* a reproducer runs against the kernel as it is: it carries no faults */
	if (env->fault) {
		err = c3_fault_execute(blob, len, first, n, sh->out, &sh->cursor, env);
	} else
#endif
	{
		c3_shed_inherited_memory();
		err = c3_execute(blob, len, first, n, sh->out, &sh->cursor, env);
	}
	if (err) {
		sh->error = -err;
		_exit(EXIT_SETUP_FAILED);
	}
	_exit(0);
}

/*
 * Waits for the executor to end, enforcing the per-case timeout. Progress is the cursor:
 * a case that keeps it still for timeout_ms gets its executor killed. Returns the
 * executor's wait status; *timed_out says whether we killed it.
 */
static int supervise(struct shared *sh, pid_t executor, uint32_t timeout_ms, int *timed_out)
{
	const struct timespec tick = {0, TICK_NS};
	uint32_t seen = sh->cursor;
	int64_t since = now_ns();
	sigset_t chld;
	int status;

	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	*timed_out = 0;
	for (;;) {
		pid_t pid;

		sigtimedwait(&chld, NULL, &tick);
		/* Reap everything: orphans and CLONE_PARENT children are ours too. */
		while ((pid = waitpid(-1, &status, WNOHANG | WUNTRACED | __WALL)) > 0) {
			if (pid != executor)
				continue;
			if (WIFSTOPPED(status)) {
				/* A child's exit_signal was SIGSTOP, which cannot be blocked:
				 * resume the executor, its case goes on. */
				kill(executor, SIGCONT);
				continue;
			}
			return status;
		}
		if (sh->cursor != seen) {
			seen = sh->cursor;
			since = now_ns();
		} else if (!*timed_out && now_ns() - since > (int64_t)timeout_ms * 1000000) {
			kill(executor, SIGKILL);
			*timed_out = 1;
		}
	}
}

/* Records the outcome of the case that was in flight when the executor died. */
static void bury(struct c3_outcome *o, int status, int timed_out)
{
	if (o->kind != C3_OUT_PENDING)
		return;
	if (timed_out) {
		o->kind = C3_OUT_TIMEOUT;
	} else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL && o->child_signal == SIGKILL) {
		/* Nobody else sends SIGKILL here: it is the exit_signal of the child this very
		 * call created, so the call succeeded. */
		o->kind = C3_OUT_KILLED_BY_CHILD;
	} else {
		o->kind = C3_OUT_CRASH;
		o->status = status;
	}
}

static void reaper_main(struct shared *sh, const uint8_t *blob, size_t len, uint32_t n,
			const struct c3_env *caller_env, int isolation, int sync_fd)
{
	struct c3_env env = *caller_env;
	uint32_t next = 0;
	char c;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (sync_fd >= 0) {
		/* The caller writes our uid/gid maps, then closes its end. */
		while (read(sync_fd, &c, 1) < 0 && errno == EINTR)
			;
	}
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	setpgid(0, 0); /* off the terminal's group: ^C is the caller's to handle */
	block_all_signals();
	/* The executor owns no fd but the cgroup's; c3_execute closes any fd above it that a
	 * call creates, so nothing inherited from the caller may sit there. */
	if (env.cgroup_fd >= 0) {
		if (dup2(env.cgroup_fd, C3_CGROUP_FD) < 0)
			_exit(EXIT_SETUP_FAILED);
		env.cgroup_fd = C3_CGROUP_FD;
	}
	syscall(__NR_close_range, env.cgroup_fd >= 0 ? C3_CGROUP_FD + 1 : 3, ~0U, 0);

	while (next < n) {
		int status, timed_out;
		pid_t executor;

		sh->cursor = next;
		executor = spawn(0);
		if (executor < 0) {
			sh->error = errno;
			break;
		}
		if (executor == 0)
			executor_main(sh, blob, len, next, n, &env, isolation);
		sh->executors++;
		status = supervise(sh, executor, env.timeout_ms, &timed_out);
		if (WIFEXITED(status) && WEXITSTATUS(status) == EXIT_SETUP_FAILED)
			break;
		if (sh->cursor >= n)
			break;
		bury(&sh->out[sh->cursor], status, timed_out);
		next = sh->cursor + 1;
	}
	_exit(0);
}

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t w;

	if (fd < 0)
		return -errno;
	w = write(fd, text, strlen(text));
	close(fd);
	return w == (ssize_t)strlen(text) ? 0 : -EPERM;
}

/* Maps our own uid and gid into the reaper's new user namespace, as an unprivileged
 * process may: one id each, and setgroups denied first. */
static int map_ids(pid_t pid)
{
	char path[64], map[64];

	snprintf(path, sizeof(path), "/proc/%d/setgroups", pid);
	write_file(path, "deny"); /* absent before 3.19, not an error */
	snprintf(path, sizeof(path), "/proc/%d/uid_map", pid);
	snprintf(map, sizeof(map), "%u %u 1", geteuid(), geteuid());
	if (write_file(path, map))
		return -EPERM;
	snprintf(path, sizeof(path), "/proc/%d/gid_map", pid);
	snprintf(map, sizeof(map), "%u %u 1", getegid(), getegid());
	return write_file(path, map);
}

/*
 * Starts the reaper with the strongest isolation this kernel and caller allow, trying
 * them in order the first time and remembering which one worked.
 */
static pid_t start_reaper(struct shared *sh, const uint8_t *blob, size_t len, uint32_t n,
			  const struct c3_env *env, int *isolation)
{
	static const unsigned long flags[] = {
		[C3_ISO_PIDNS] = CLONE_NEWPID,
		[C3_ISO_USERNS] = CLONE_NEWUSER | CLONE_NEWPID,
		[C3_ISO_SUBREAPER] = 0,
	};
	static int known;

	for (int iso = known ? known : C3_ISO_PIDNS; iso <= C3_ISO_SUBREAPER; iso++) {
		int sync[2] = {-1, -1};
		pid_t pid;

		if (iso == C3_ISO_USERNS && pipe2(sync, O_CLOEXEC))
			return -errno;
		pid = spawn(flags[iso]);
		if (pid == 0) {
			if (sync[1] >= 0)
				close(sync[1]);
			reaper_main(sh, blob, len, n, env, iso, sync[0]);
		}
		if (sync[0] >= 0)
			close(sync[0]);
		if (pid > 0 && iso == C3_ISO_USERNS && map_ids(pid)) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, __WALL);
			pid = -EPERM;
		}
		if (sync[1] >= 0)
			close(sync[1]);
		if (pid > 0) {
			known = *isolation = iso;
			return pid;
		}
		if (iso == known)
			known = 0; /* it worked before; let the next call search again */
	}
	return -EPERM;
}

/* A running batch, from c3_tree_start() to c3_tree_finish(). */
struct c3_tree {
	struct shared *sh;
	size_t shlen;
	uint32_t n;
	int32_t isolation;
	pid_t reaper;
};

struct c3_tree *c3_tree_start(const uint8_t *blob, size_t len, uint32_t n, const struct c3_env *env,
			      int *err)
{
	struct c3_tree *t = calloc(1, sizeof(*t));

	if (!t) {
		*err = -ENOMEM;
		return NULL;
	}
	t->n = n;
	t->shlen = sizeof(struct shared) + (size_t)n * sizeof(struct c3_outcome);
	/* Populated now: faulting the pages in one by one during the batch costs more. */
	t->sh = mmap(NULL, t->shlen, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (t->sh == MAP_FAILED) {
		*err = -errno;
		free(t);
		return NULL;
	}
	t->reaper = start_reaper(t->sh, blob, len, n, env, &t->isolation);
	if (t->reaper < 0) {
		*err = t->reaper;
		munmap(t->sh, t->shlen);
		free(t);
		return NULL;
	}
	*err = 0;
	return t;
}

/*
 * Waits for the batch to end. -EINTR means a signal for the caller arrived first (^C, a
 * fuzzer's alarm): the batch keeps running, and the caller may run its handlers and wait
 * again, or give up with c3_tree_finish(t, ..., 1).
 */
int c3_tree_wait(struct c3_tree *t)
{
	siginfo_t si;

	/* WNOWAIT keeps the reaper a zombie, so its pid (and process group) cannot be reused
	 * before c3_tree_finish() has killed whatever is left in its group. */
	if (waitid(P_PID, (id_t)t->reaper, &si, WEXITED | WNOWAIT) == 0)
		return 0;
	return -errno;
}

void c3_tree_finish(struct c3_tree *t, struct c3_outcome *out, struct c3_batch_info *info, int stop)
{
	if (stop)
		kill(t->reaper, SIGKILL);
	/* Without a pid namespace the kernel does not kill the leftovers for us. */
	kill(-t->reaper, SIGKILL);
	waitpid(t->reaper, NULL, __WALL);
	memcpy(out, t->sh->out, (size_t)t->n * sizeof(struct c3_outcome));
	memset(info, 0, sizeof(*info));
	info->isolation = t->isolation;
	info->error = t->sh->error;
	info->executors = t->sh->executors;
	for (uint32_t i = 0; i < t->n; i++)
		info->done += out[i].kind != C3_OUT_PENDING;
	munmap(t->sh, t->shlen);
	free(t);
}

/*
 * The baseline a benchmark compares the executor with: the bare syscall in a loop, in a
 * process of the same shape as the executor (forked from the caller, its memory shed), so
 * that the ratio measures the executor's own overhead. Returns nanoseconds, or -errno.
 */
int64_t c3_baseline(const void *args, uint64_t size, uint32_t iterations, int reap)
{
	int64_t *elapsed = mmap(NULL, sizeof(*elapsed), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	int64_t result;
	pid_t pid;

	if (elapsed == MAP_FAILED)
		return -errno;
	*elapsed = -ECHILD;
	pid = spawn(0);
	if (pid == 0) {
		int64_t t0;

		c3_shed_inherited_memory();
		t0 = now_ns();
		for (uint32_t i = 0; i < iterations; i++) {
			long ret = c3_clone3((void *)args, size);

			if (reap && ret > 0)
				waitpid((pid_t)ret, NULL, __WALL);
		}
		*elapsed = now_ns() - t0;
		_exit(0);
	}
	if (pid < 0)
		result = -errno;
	else if (waitpid(pid, NULL, __WALL) < 0)
		result = -errno;
	else
		result = *elapsed;
	munmap(elapsed, sizeof(*elapsed));
	return result;
}
