/*
 * The sandbox: the process tree cases run in, so that whatever clone3 creates (processes,
 * threads, namespaces) never reaches the caller. It stays up across batches: starting a
 * tree costs more than a batch of rejected calls, so batches come and go through the
 * tree's shared memory instead.
 *
 *     caller --clone(NEWPID[|NEWUSER])--> reaper (pid 1, subreaper) --clone--> executor
 *
 * - The reaper is init of a fresh pid namespace when the kernel lets us make one: when it
 *   exits, the kernel kills everything left in the namespace. Unprivileged callers get a
 *   user namespace around it, and the executor then drops every capability so that the
 *   kernel sees an unprivileged caller, as outside.
 * - The tree dies with its caller: the reaper and the executor have PR_SET_PDEATHSIG, and
 *   the reaper's death ends the namespace. A worker killed by SIGKILL leaves nothing.
 * - Nothing a case creates outlives the case: the executor settles each call (executor.c),
 *   and when an executor dies, its process group (which its calls' children share) dies
 *   with it.
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
#include <sys/auxv.h>
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
#define SHED_MIN (1UL << 20)  /* see c3_shed_inherited_memory() */
#define STILLBORN_MAX 3      /* executors in a row that may die before taking up a posted batch */

/*
 * What the caller, the reaper and the executor share: one MAP_SHARED mapping, made before
 * the tree starts, that lives as long as the tree. A batch goes in as a blob and comes out
 * as outcomes without a process being started. `posted` and `done` are futex words: the
 * caller posts batch k by setting posted = k; the batch is over when done == posted.
 */
struct shared {
	uint32_t posted;          /* futex: the batch the caller wants run */
	uint32_t done;            /* futex: the last batch with every outcome in */
	uint32_t started;         /* the batch the current executor took up */
	uint32_t next;            /* the case an executor starts the batch from */
	volatile uint32_t cursor; /* the case in flight (c3_execute writes it) */
	uint32_t n;               /* cases in the posted batch */
	uint64_t len;             /* bytes of its blob */
	int32_t error;            /* errno of a harness failure; the tree then ends */
	uint32_t executors;       /* executor processes started over the tree's life */
	struct c3_env env;
	struct c3_outcome *out;   /* case_cap outcomes, then blob_cap bytes of blob */
	uint8_t *blob;
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

static uint32_t load(const uint32_t *word)
{
	return __atomic_load_n(word, __ATOMIC_ACQUIRE);
}

/* futex(2)'s ops (linux/futex.h), spelled out as capset's are below. Shared futexes, not
 * FUTEX_PRIVATE_FLAG ones: the waiters are separate processes. */
#define C3_FUTEX_WAIT 0
#define C3_FUTEX_WAKE 1

static int futex_wait(uint32_t *word, uint32_t seen, const struct timespec *timeout)
{
	return (int)syscall(SYS_futex, word, C3_FUTEX_WAIT, seen, timeout, NULL, 0);
}

static void publish(uint32_t *word, uint32_t value)
{
	__atomic_store_n(word, value, __ATOMIC_RELEASE);
	syscall(SYS_futex, word, C3_FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
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

/* The file a mapping line of /proc/self/maps names ("" for an anonymous one). */
static const char *mapped_file(const char *perms)
{
	const char *path = strchr(perms, '/');

	return path ? path : "";
}

/* The file mapped at addr, found in the maps text (NULL if none). */
static const char *file_at(char *maps, unsigned long addr, char *file, size_t size)
{
	for (char *line = maps; *line;) {
		char *end, *eol = strchr(line, '\n');
		unsigned long lo = strtoul(line, &end, 16), hi = strtoul(end + 1, &end, 16);
		size_t n;

		if (lo <= addr && addr < hi) {
			const char *path = mapped_file(end);

			n = eol ? (size_t)(eol - path) : strlen(path);
			if (!*path || n >= size || (eol && path > eol))
				return NULL;
			memcpy(file, path, n);
			file[n] = 0;
			return file;
		}
		if (!eol)
			break;
		line = eol + 1;
	}
	return NULL;
}

/*
 * The reaper is a clone of the caller, usually a Python interpreter whose heap runs to
 * tens of megabytes in some hundred mappings; every process it starts, and every
 * successful clone3 without CLONE_VM, would copy them, which made a success case cost ten
 * times what it costs from a small process. Nothing below the caller touches that memory
 * (the tree's state is in its shared mapping, and a clone3 child touches none, see
 * c3_clone3), so what the tree does not run is marked MADV_DONTFORK: the large anonymous
 * mappings (the interpreter's heap and arenas) and the files other than this code's,
 * libc's and the dynamic loader's (159 mappings became 32, and a success case 25% cheaper).
 */
int c3_shed = 1;

void c3_shed_inherited_memory(void)
{
	static char maps[1 << 18], keep[3][4096];
	unsigned long here = (unsigned long)__builtin_frame_address(0);
	const char *kept[3];
	size_t len = 0;
	ssize_t r;
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return;
	while (len < sizeof(maps) - 1 && (r = read(fd, maps + len, sizeof(maps) - 1 - len)) > 0)
		len += (size_t)r;
	close(fd);
	maps[len] = 0;
	/* The files whose code and data the tree runs: this code's own, libc's, the
	 * dynamic loader's (lazy binding). */
	kept[0] = file_at(maps, (unsigned long)&c3_shed_inherited_memory, keep[0], sizeof(keep[0]));
	kept[1] = file_at(maps, (unsigned long)&syscall, keep[1], sizeof(keep[1]));
	kept[2] = file_at(maps, (unsigned long)getauxval(AT_BASE), keep[2], sizeof(keep[2]));
	for (char *line = maps; line && *line;) {
		char *end, *next = strchr(line, '\n');
		unsigned long lo = strtoul(line, &end, 16), hi = strtoul(end + 1, &end, 16);
		const char *perms = end + 1, *file;
		int shed;

		if (next)
			*next++ = 0;
		file = mapped_file(perms);
		if (*file) {
			shed = perms[3] == 'p';
			for (int i = 0; i < 3; i++)
				shed &= !kept[i] || strcmp(file, kept[i]) != 0;
		} else {
			/* Anonymous: the large private ones (heap, arenas). Small ones stay: among
			 * them glibc's TLS with the rseq area, which the kernel writes on the
			 * child's way back to user space. */
			shed = perms[1] == 'w' && perms[3] == 'p' && hi - lo >= SHED_MIN && !strstr(perms, "[");
		}
		/* Never the stack we run on: a tree started from a thread runs on a mapping
		 * that is not named [stack], and a child born without it dies at once. */
		if (shed && !(lo <= here && here < hi))
			madvise((void *)lo, hi - lo, MADV_DONTFORK);
		line = next;
	}
}

/* The executor's life: take up each posted batch, from sh->next on, and say when it is done. */
static void serve(const void *arg)
{
	struct shared *sh = (struct shared *)arg;

	for (;;) {
		uint32_t posted = load(&sh->posted);
		int err;

		if (posted == load(&sh->done)) {
			futex_wait(&sh->posted, posted, NULL);
			continue;
		}
		sh->started = posted;
		err = c3_execute(sh->blob, sh->len, sh->next, sh->n, sh->out, &sh->cursor, &sh->env);
		if (err) {
			sh->error = -err;
			_exit(EXIT_SETUP_FAILED);
		}
		publish(&sh->done, posted);
	}
}

static void executor_main(struct shared *sh, int isolation)
{
	/* No core files from crashes we provoke on purpose; the executor writes no files. */
	struct rlimit zero = {0, 0};

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	/* A group of its own, which what its calls create inherits: see reaper_main(). */
	setpgid(0, 0);
	setrlimit(RLIMIT_CORE, &zero);
	setrlimit(RLIMIT_FSIZE, &zero);
	if (isolation == C3_ISO_USERNS)
		drop_capabilities();
#ifndef C3_REPRO /* a reproducer runs against the kernel as it is: it carries no faults */
	if (sh->env.fault) {
		int err = c3_fault_serve(serve, sh, sh->env.fault);

		sh->error = -err;
		_exit(EXIT_SETUP_FAILED);
	}
#endif
	serve(sh);
}

/*
 * Waits for the executor to end, enforcing the per-case timeout. Progress is the cursor:
 * a case of a posted batch that keeps it still for timeout_ms gets its executor killed.
 * Returns the executor's wait status; *timed_out says whether we killed it.
 */
static int supervise(struct shared *sh, pid_t executor, int *timed_out)
{
	const struct timespec tick = {0, TICK_NS};
	uint32_t seen = sh->cursor, batch = load(&sh->posted);
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
		if (sh->cursor != seen || load(&sh->posted) != batch || load(&sh->done) == batch) {
			/* Moving, or idle between batches: an idle executor never times out. */
			seen = sh->cursor;
			batch = load(&sh->posted);
			since = now_ns();
		} else if (!*timed_out && now_ns() - since > (int64_t)sh->env.timeout_ms * 1000000) {
			kill(executor, SIGKILL);
			*timed_out = 1;
		}
	}
}

/*
 * Reaps what the dead executor's group left us (its children are ours now, and were just
 * killed) before the batch goes on: otherwise a batch could end with one still a zombie,
 * and nothing a case creates may outlive its batch. Bounded: a task frozen by a cgroup v1
 * freezer dies only once thawed, and the next batches' reaping takes it then.
 */
static void reap_group(pid_t group)
{
	const struct timespec pause = {0, 2000000};

	for (int tries = 0; tries < 50; tries++) {
		pid_t got;

		while ((got = waitpid(-group, NULL, WNOHANG | __WALL)) > 0)
			;
		if (got < 0)
			return; /* ECHILD: nothing of the group is left */
		nanosleep(&pause, NULL);
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
	} else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS && o->in_call) {
		/* Only seccomp kills a task in a syscall with SIGSYS (SECCOMP_RET_KILL_*, and
		 * RET_TRAP forced through the executor's blocked mask): a filter answered
		 * clone3 itself, as it would have answered any caller. */
		o->kind = C3_OUT_SIGSYS;
	} else {
		o->kind = C3_OUT_CRASH;
		o->status = status;
	}
}

/*
 * The reaper's life: keep one executor up, and when it dies in the middle of a batch
 * (a crash, a timeout, an exit_signal of SIGKILL), record the case it died on and start
 * another on the rest of the batch. It ends only with its caller (PR_SET_PDEATHSIG) or on a
 * harness failure, which it records in sh->error before it marks the batch done.
 */
static void reaper_main(struct shared *sh, int isolation, int sync_fd)
{
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
	if (c3_shed)
		c3_shed_inherited_memory();
	/* The executor owns no fd but the cgroup's; c3_execute closes any fd above it that a
	 * call creates, so nothing inherited from the caller may sit there. */
	if (sh->env.cgroup_fd >= 0) {
		if (dup2(sh->env.cgroup_fd, C3_CGROUP_FD) < 0) {
			sh->error = errno;
			_exit(EXIT_SETUP_FAILED);
		}
		sh->env.cgroup_fd = C3_CGROUP_FD;
	}
	syscall(__NR_close_range, sh->env.cgroup_fd >= 0 ? C3_CGROUP_FD + 1 : 3, ~0U, 0);

	for (unsigned stillborn = 0;;) {
		int status = 0, timed_out = 0, in_flight;
		uint32_t batch;
		pid_t executor = spawn(0);

		if (executor < 0)
			sh->error = errno;
		if (executor == 0)
			executor_main(sh, isolation);
		if (executor > 0) {
			sh->executors++;
			status = supervise(sh, executor, &timed_out);
			/* What the dead executor's calls created and left behind (a child frozen
			 * in a cgroup, say) goes with it: nothing a case creates outlives it, and
			 * the tree now outlives many cases. */
			kill(-executor, SIGKILL);
			reap_group(executor);
			if (WIFEXITED(status) && WEXITSTATUS(status) == EXIT_SETUP_FAILED && !sh->error)
				sh->error = EIO;
		}
		/* Only we publish done while no executor runs: these hold until we do. */
		batch = load(&sh->posted);
		in_flight = batch != load(&sh->done);
		if (in_flight && sh->started != batch && ++stillborn >= STILLBORN_MAX)
			sh->error = ECHILD; /* executors that die before their first case: give up */
		if (sh->error) {
			publish(&sh->done, batch);
			_exit(0);
		}
		if (!in_flight || sh->started != batch)
			continue; /* died between batches, or before it took this one up */
		stillborn = 0;
		if (sh->cursor < sh->n)
			bury(&sh->out[sh->cursor], status, timed_out);
		sh->next = sh->cursor + 1;
		if (sh->next >= sh->n)
			publish(&sh->done, batch);
	}
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
static pid_t start_reaper(struct shared *sh, int *isolation)
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
			reaper_main(sh, iso, sync[0]);
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

/* A running tree, from c3_tree_start() to c3_tree_free(). */
struct c3_tree {
	struct shared *sh;
	size_t maplen, blob_cap;
	uint32_t case_cap;
	uint32_t executors; /* sh->executors when the last batch was collected */
	int32_t isolation;
	pid_t reaper;       /* 0 once stopped */
	pid_t owner;        /* the caller; a fork of it must not stop the caller's tree */
};

/* Whether the reaper has ended (killed from outside, or with the thread that started it). */
static int reaper_gone(const struct c3_tree *t)
{
	siginfo_t si;

	/* WNOWAIT keeps a dead reaper a zombie, so its pid (and process group) cannot be
	 * reused before c3_tree_stop() has killed whatever is left in its group. */
	si.si_pid = 0;
	return waitid(P_PID, (id_t)t->reaper, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid;
}

struct c3_tree *c3_tree_start(const struct c3_env *env, size_t blob_cap, uint32_t case_cap, int *err)
{
	struct c3_tree *t = calloc(1, sizeof(*t));
	size_t head = (sizeof(struct shared) + 63) & ~(size_t)63;
	uint8_t *map;

	if (!t) {
		*err = -ENOMEM;
		return NULL;
	}
	t->blob_cap = blob_cap;
	t->case_cap = case_cap;
	t->maplen = head + (size_t)case_cap * sizeof(struct c3_outcome) + blob_cap;
	/* Populated now: faulting the pages in one by one during the batch costs more. */
	map = mmap(NULL, t->maplen, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (map == MAP_FAILED) {
		*err = -errno;
		free(t);
		return NULL;
	}
	t->sh = (struct shared *)map;
	t->sh->env = *env;
	t->sh->out = (struct c3_outcome *)(map + head);
	t->sh->blob = map + head + (size_t)case_cap * sizeof(struct c3_outcome);
	t->owner = getpid();
	t->reaper = start_reaper(t->sh, &t->isolation);
	if (t->reaper < 0) {
		*err = t->reaper;
		munmap(map, t->maplen);
		free(t);
		return NULL;
	}
	*err = 0;
	return t;
}

int c3_tree_post(struct c3_tree *t, const uint8_t *blob, size_t len, uint32_t n)
{
	struct shared *sh = t->sh;

	if (len > t->blob_cap || n > t->case_cap)
		return -E2BIG;
	if (!t->reaper || sh->error || reaper_gone(t))
		return -ECHILD;
	memcpy(sh->blob, blob, len);
	memset(sh->out, 0, (size_t)n * sizeof(struct c3_outcome));
	sh->len = len;
	sh->n = n;
	sh->next = 0;
	sh->cursor = 0;
	publish(&sh->posted, sh->posted + 1);
	return 0;
}

/*
 * Waits for the posted batch to end. -EINTR means a signal for the caller arrived first
 * (^C, a fuzzer's alarm): the batch keeps running, and the caller may run its handlers and
 * wait again, or give up with c3_tree_stop(). -ECHILD: the reaper is gone (killed from
 * outside); what the batch did before is in the outcomes.
 */
int c3_tree_wait(struct c3_tree *t)
{
	/* Short enough to notice a dead reaper soon, long enough to cost nothing. */
	const struct timespec poll = {0, 100000000};
	struct shared *sh = t->sh;
	uint32_t posted = sh->posted, done;

	while ((done = load(&sh->done)) != posted) {
		if (futex_wait(&sh->done, done, &poll) && errno == EINTR)
			return -EINTR;
		if (load(&sh->done) != posted && reaper_gone(t))
			return -ECHILD;
	}
	return 0;
}

void c3_tree_collect(struct c3_tree *t, struct c3_outcome *out, struct c3_batch_info *info)
{
	struct shared *sh = t->sh;

	memcpy(out, sh->out, (size_t)sh->n * sizeof(struct c3_outcome));
	memset(info, 0, sizeof(*info));
	info->isolation = t->isolation;
	info->error = sh->error;
	info->executors = sh->executors - t->executors;
	t->executors = sh->executors;
	for (uint32_t i = 0; i < sh->n; i++)
		info->done += out[i].kind != C3_OUT_PENDING;
}

void c3_tree_stop(struct c3_tree *t)
{
	if (!t->reaper || getpid() != t->owner) {
		t->reaper = 0; /* in a fork of the caller, the tree is not ours to stop */
		return;
	}
	kill(t->reaper, SIGKILL);
	/* Without a pid namespace the kernel does not kill the leftovers for us. */
	kill(-t->reaper, SIGKILL);
	waitpid(t->reaper, NULL, __WALL);
	t->reaper = 0;
}

void c3_tree_free(struct c3_tree *t)
{
	c3_tree_stop(t);
	munmap(t->sh, t->maplen);
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
			long ret = c3_clone3((void *)args, size, NULL);

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
