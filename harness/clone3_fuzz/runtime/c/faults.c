/*
 * Planted faults, for `clone3-fuzz selftest`: clone3 made to behave like a buggy kernel.
 *
 * The executor splits in two. The runner (the child) installs a seccomp filter that turns
 * every clone3 into a user notification, and runs the cases. The notifier (the parent,
 * which the sandbox's reaper supervises as "the executor") reads each call's struct from
 * the runner's memory and answers as the buggy kernel would: a wrong errno, or the struct
 * rewritten and the real call let through (SECCOMP_USER_NOTIF_FLAG_CONTINUE). The parent
 * is the notifier so that reading and writing the runner's memory needs no privilege
 * (a parent may ptrace its child, even under Yama).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "c3.h"

#ifndef __NR_clone3
#define __NR_clone3 435
#endif

static const char *const names[C3_NFAULTS] = {
	[C3_FAULT_OVERSIZE_EINVAL] = "oversize-einval: a size over a page gives EINVAL, not E2BIG",
	[C3_FAULT_UNDERSIZE_E2BIG] = "undersize-e2big: a size under 64 gives E2BIG, not EINVAL",
	[C3_FAULT_TAIL_IGNORED] = "tail-ignored: nonzero bytes past the struct are ignored (zeroed, call goes on)",
	[C3_FAULT_DETACHED_ACCEPTED] = "detached-accepted: CLONE_DETACHED is dropped instead of rejected",
	[C3_FAULT_NEWTIME_REJECTED] = "newtime-rejected: CLONE_NEWTIME is EINVAL, as before 6.3",
	[C3_FAULT_EXIT_SIGNAL_UNCHECKED] = "exit-signal-unchecked: an exit_signal past _NSIG is taken (as SIGCHLD)",
	[C3_FAULT_VM_VFORK_EINVAL] = "vm-vfork-einval: CLONE_VM|CLONE_VFORK together give EINVAL",
	[C3_FAULT_READS_PAST_SIZE] = "reads-past-size: a struct of 64..88 bytes ending at an unmapped page gives EFAULT",
	[C3_FAULT_STACK_UNCHECKED] = "stack-unchecked: a stack_size without a stack is taken (size dropped)",
	[C3_FAULT_BETWEEN_VERSIONS_EINVAL] = "between-versions-einval: a size between two struct versions gives EINVAL",
	[C3_FAULT_CLEAR_SIGHAND_ACCEPTED] = "clear-sighand-accepted: CLONE_SIGHAND|CLONE_CLEAR_SIGHAND is taken (CLEAR dropped)",
	[C3_FAULT_PIDFD_THREAD_EINVAL] = "pidfd-thread-einval: CLONE_PIDFD|CLONE_THREAD gives EINVAL, as before 6.9",
	/* One per limit the probe calibrates: the profile must not learn a missing check. */
	[C3_FAULT_STACK_RANGE_UNCHECKED] = "stack-range-unchecked: a stack range past the user address limit is taken (stack dropped)",
	[C3_FAULT_TLS_RANGE_UNCHECKED] = "tls-range-unchecked: a CLONE_SETTLS tls past the user address space is taken (CLONE_SETTLS dropped)",
	[C3_FAULT_PID_MAX_UNCHECKED] = "pid-max-unchecked: a set_tid pid at or above PID_MAX_LIMIT is taken as one in use (EEXIST)",
	/* Effects: every call answers as it should, and yet it does not do what it was asked. */
	[C3_FAULT_PARENT_TID_IGNORED] = "parent-tid-ignored: CLONE_PARENT_SETTID is dropped: parent_tid is never written",
	[C3_FAULT_EXIT_SIGNAL_SIGCHLD] = "exit-signal-sigchld: any exit_signal becomes SIGCHLD",
	[C3_FAULT_PIDFD_DROPPED] = "pidfd-dropped: CLONE_PIDFD is dropped: no pidfd is returned",
	[C3_FAULT_SET_TID_SHIFTED] = "set-tid-shifted: the child gets the pid after the one set_tid asked for",
	[C3_FAULT_PARENT_TID_UNASKED] = "parent-tid-unasked: a parent_tid pointer is written without CLONE_PARENT_SETTID",
	[C3_FAULT_VFORK_IGNORED] = "vfork-ignored: CLONE_VFORK is dropped: the call returns before the child exits",
	[C3_FAULT_CGROUP_IGNORED] = "cgroup-ignored: CLONE_INTO_CGROUP with a usable cgroup is dropped: the child stays in ours",
};

const char *c3_fault_name(int fault)
{
	return fault > 0 && fault < C3_NFAULTS ? names[fault] : NULL;
}

/* x86-64's TASK_SIZE_MAX with 4-level paging, and PID_MAX_LIMIT on 64-bit: the limits the
 * limit faults pretend not to check. */
#define USER_LIMIT 0x7ffffffff000ULL
#define PID_LIMIT 4194304

/* Whether the runner could read the byte at addr. Not through /proc/pid/mem, which reads
 * PROT_NONE pages too (as a debugger would): process_vm_readv() honours protections. */
static int readable(pid_t pid, uint64_t addr)
{
	uint8_t byte;
	struct iovec local = {&byte, 1}, remote = {(void *)(uintptr_t)addr, 1};

	return process_vm_readv(pid, &local, 1, &remote, 1, 0) == 1;
}

/* Returns -errno to answer with, or 0 to let the (perhaps rewritten) call go on. */
static int misbehave(int fault, pid_t pid, int mem, uint64_t ptr, uint64_t size, long page)
{
	uint8_t buf[65536];
	uint64_t want = size < sizeof(buf) ? size : sizeof(buf), f[11] = {0};
	ssize_t got = size <= (uint64_t)page ? pread(mem, buf, want, (off_t)ptr) : -1;
	int sane = got >= 64 && size >= 64 && size <= (uint64_t)page;

	if (got >= 8)
		memcpy(f, buf, got < 88 ? (size_t)got : 88);
	switch (fault) {
	case C3_FAULT_OVERSIZE_EINVAL:
		return size > (uint64_t)page ? -EINVAL : 0;
	case C3_FAULT_UNDERSIZE_E2BIG:
		return size < 64 ? -E2BIG : 0;
	case C3_FAULT_BETWEEN_VERSIONS_EINVAL:
		return size > 64 && size < 88 && size != 80 ? -EINVAL : 0;
	case C3_FAULT_READS_PAST_SIZE:
		return size >= 64 && size <= 88 && !readable(pid, ptr + size) ? -EFAULT : 0;
	case C3_FAULT_TAIL_IGNORED:
		if (sane && (uint64_t)got == size && size > 88) {
			memset(buf, 0, size - 88);
			if (pwrite(mem, buf, size - 88, (off_t)(ptr + 88)) < 0)
				return 0;
		}
		return 0;
	}
	if (!sane)
		return 0;
	switch (fault) {
	case C3_FAULT_NEWTIME_REJECTED:
		return f[0] & C3_CLONE_NEWTIME ? -EINVAL : 0;
	case C3_FAULT_VM_VFORK_EINVAL:
		return (f[0] & (C3_CLONE_VM | C3_CLONE_VFORK)) == (C3_CLONE_VM | C3_CLONE_VFORK) ? -EINVAL : 0;
	case C3_FAULT_PIDFD_THREAD_EINVAL:
		return (f[0] & (C3_CLONE_PIDFD | C3_CLONE_THREAD)) == (C3_CLONE_PIDFD | C3_CLONE_THREAD) ? -EINVAL : 0;
	case C3_FAULT_DETACHED_ACCEPTED:
		f[0] &= ~C3_CLONE_DETACHED;
		break;
	case C3_FAULT_CLEAR_SIGHAND_ACCEPTED:
		if ((f[0] & (C3_CLONE_SIGHAND | C3_CLONE_CLEAR_SIGHAND)) == (C3_CLONE_SIGHAND | C3_CLONE_CLEAR_SIGHAND))
			f[0] &= ~C3_CLONE_CLEAR_SIGHAND;
		break;
	case C3_FAULT_EXIT_SIGNAL_UNCHECKED:
		if (f[4] > 64 && f[4] <= 255)
			f[4] = SIGCHLD;
		break;
	case C3_FAULT_STACK_UNCHECKED:
		if (f[5] == 0 && f[6])
			f[6] = 0;
		break;
	case C3_FAULT_STACK_RANGE_UNCHECKED:
		if (f[5] && f[6] && (f[5] + f[6] < f[5] || f[5] + f[6] > USER_LIMIT))
			f[5] = f[6] = 0; /* the caller's stack: the child path needs none */
		break;
	case C3_FAULT_TLS_RANGE_UNCHECKED:
		if (f[0] & C3_CLONE_SETTLS && f[7] >= USER_LIMIT)
			f[0] &= ~C3_CLONE_SETTLS;
		break;
	case C3_FAULT_PARENT_TID_IGNORED:
		f[0] &= ~(uint64_t)C3_CLONE_PARENT_SETTID;
		break;
	case C3_FAULT_EXIT_SIGNAL_SIGCHLD:
		if (f[4] && f[4] <= 64)
			f[4] = SIGCHLD;
		break;
	case C3_FAULT_PIDFD_DROPPED:
		f[0] &= ~(uint64_t)C3_CLONE_PIDFD;
		break;
	case C3_FAULT_SET_TID_SHIFTED:
		/* The caller's pid list, one up: every check answers as before (a pid that is
		 * free or taken stays either), only the pid the child gets is wrong. */
		if (got >= 80 && f[8] && f[9] && f[9] <= 32 && !(f[0] & C3_CLONE_NEWPID)) {
			int32_t pid;

			if (pread(mem, &pid, sizeof(pid), (off_t)f[8]) == sizeof(pid) && pid >= 2 && pid < PID_LIMIT - 1) {
				pid++;
				if (pwrite(mem, &pid, sizeof(pid), (off_t)f[8]) < 0)
					return 0;
			}
		}
		return 0;
	case C3_FAULT_PARENT_TID_UNASKED:
		if (f[3])
			f[0] |= C3_CLONE_PARENT_SETTID;
		break;
	case C3_FAULT_VFORK_IGNORED:
		f[0] &= ~(uint64_t)C3_CLONE_VFORK;
		break;
	case C3_FAULT_CGROUP_IGNORED:
		/* Only the sandbox's cgroup fd: a bad fd still gives EBADF, as it should. */
		if (got >= 88 && f[10] == C3_CGROUP_FD)
			f[0] &= ~(uint64_t)C3_CLONE_INTO_CGROUP;
		break;
	case C3_FAULT_PID_MAX_UNCHECKED:
		if (got >= 80 && f[8] && f[9] && f[9] <= 32) {
			int32_t pids[32];

			if (pread(mem, pids, f[9] * sizeof(int32_t), (off_t)f[8]) == (ssize_t)(f[9] * sizeof(int32_t)))
				for (uint64_t i = 0; i < f[9]; i++)
					if (pids[i] >= PID_LIMIT)
						return -EEXIST;
		}
		return 0;
	}
	/* Back as much as was read: a rewrite never reaches past what the caller passed. */
	if (pwrite(mem, f, got < 88 ? (size_t)got : 88, (off_t)ptr) < 0)
		return 0;
	return 0;
}

/* Dies the way the runner died, so the reaper can judge the case as usual. */
static void mirror(int status)
{
	if (WIFSIGNALED(status)) {
		uint64_t mask = ~(1ULL << (WTERMSIG(status) - 1));

		signal(WTERMSIG(status), SIG_DFL);
		syscall(SYS_rt_sigprocmask, SIG_SETMASK, &mask, NULL, sizeof(mask));
		kill(getpid(), WTERMSIG(status));
	}
	_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 1);
}

static int send_fd(int sock, int fd)
{
	char data = 0, control[CMSG_SPACE(sizeof(int))];
	struct iovec iov = {&data, 1};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof(control)};
	struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);

	cmsg->cmsg_level = SOL_SOCKET;
	cmsg->cmsg_type = SCM_RIGHTS;
	cmsg->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
	return sendmsg(sock, &msg, 0) == 1 ? 0 : -1;
}

static int recv_fd(int sock)
{
	char data, control[CMSG_SPACE(sizeof(int))];
	struct iovec iov = {&data, 1};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof(control)};
	struct cmsghdr *cmsg;
	int fd;

	if (recvmsg(sock, &msg, 0) != 1 || !(cmsg = CMSG_FIRSTHDR(&msg)))
		return -1;
	memcpy(&fd, CMSG_DATA(cmsg), sizeof(int));
	return fd;
}

static int install_filter(void)
{
	struct sock_filter code[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone3, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {sizeof(code) / sizeof(code[0]), code};

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return -1;
	return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
}

/*
 * Starts the runner: it opens its own memory (/proc shows the caller's pid namespace,
 * where the notifier cannot name it by pid), installs the filter, hands both fds over and
 * calls run(). Returns its pid; *listener and *mem are the notifier's ends.
 */
static pid_t start_runner(void (*run)(const void *), const void *arg, int *listener, int *mem)
{
	int sv[2];
	pid_t runner;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return -errno;
	runner = (pid_t)syscall(SYS_clone, SIGCHLD, NULL, NULL, NULL, NULL);
	if (runner < 0)
		return -errno;
	if (runner == 0) {
		int self = open("/proc/self/mem", O_RDWR | O_CLOEXEC), fd;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		fd = install_filter();
		if (self < 0 || fd < 0 || send_fd(sv[1], fd) || send_fd(sv[1], self))
			_exit(67);
		close(fd);
		close(self);
		close(sv[0]);
		close(sv[1]);
		run(arg);
		_exit(0);
	}
	close(sv[1]);
	*listener = recv_fd(sv[0]);
	*mem = recv_fd(sv[0]);
	close(sv[0]);
	return runner;
}

/*
 * One call's answer. The runner's own calls are read through the fd it opened before its
 * filter (in the sandbox, /proc shows another pid namespace than the caller's). A
 * program's calls come from processes it started, after an exec that left that fd on a
 * dead address space: those are opened by pid, which the kernel gave in our namespace.
 */
/* What a planted fault answers a call with, for notify(). */
struct planted {
	int fault;
	pid_t runner;
	int mem;
	long page;
};

static int answer(const struct seccomp_notif *req, void *ctx)
{
	const struct planted *p = ctx;
	int fault = p->fault, mem = p->mem;
	pid_t runner = p->runner;
	long page = p->page;
	char path[64];
	int own, err;

	if ((pid_t)req->pid == runner && mem >= 0)
		return misbehave(fault, runner, mem, req->data.args[0], req->data.args[1], page);
	snprintf(path, sizeof(path), "/proc/%u/mem", req->pid);
	own = open(path, O_RDWR | O_CLOEXEC);
	if (own < 0)
		return 0; /* gone already, or out of reach: let the real kernel answer */
	err = misbehave(fault, (pid_t)req->pid, own, req->data.args[0], req->data.args[1], page);
	close(own);
	return err;
}

/*
 * Answers the runner's clone3 calls, as decide(req, ctx) says (-errno, or 0 to let the real
 * kernel take the call), until it ends; returns its wait status. With reap_all, children
 * that CLONE_PARENT gave us are reaped too (in the sandbox, where this process has no
 * other children), and a stopped runner is resumed.
 */
static int notify(pid_t runner, int listener, int reap_all, int (*decide)(const struct seccomp_notif *, void *),
		  void *ctx)
{
	static uint8_t req_buf[512], resp_buf[512];
	struct seccomp_notif *req = (void *)req_buf;
	struct seccomp_notif_resp *resp = (void *)resp_buf;

	for (;;) {
		struct pollfd fds[1] = {{listener, POLLIN, 0}};
		int status;
		pid_t pid;

		poll(fds, 1, 10);
		while ((pid = waitpid(reap_all ? -1 : runner, &status, WNOHANG | WUNTRACED | __WALL)) > 0) {
			if (pid != runner)
				continue;
			if (!WIFSTOPPED(status))
				return status;
			kill(runner, SIGCONT); /* an exit_signal of SIGSTOP */
		}
		if (listener < 0 || !(fds[0].revents & POLLIN))
			continue;
		memset(req_buf, 0, sizeof(req_buf));
		if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, req))
			continue;
		memset(resp_buf, 0, sizeof(resp_buf));
		resp->id = req->id;
		resp->error = decide(req, ctx);
		if (!resp->error)
			resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
		ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, resp);
	}
}

int c3_fault_serve(void (*serve)(const void *), const void *arg, int fault)
{
	int listener, mem;
	pid_t runner = start_runner(serve, arg, &listener, &mem);

	if (runner < 0)
		return runner;
	struct planted planted = {fault, runner, mem, sysconf(_SC_PAGESIZE)};

	mirror(notify(runner, listener, 1, answer, &planted));
	return 0;
}

static void run_program(const void *arg)
{
	char *const *argv = arg;

	execv(argv[0], argv);
	_exit(127);
}

static int wait_program(pid_t pid)
{
	int status;

	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return status;
}

/* Without a fault, the program simply runs: Python itself must never fork (a forked
 * interpreter under atheris leaves false crash artifacts), so compilers and reproducers
 * are started from here. */
int c3_fault_exec(char *const argv[], int fault)
{
	int listener, mem, status;
	pid_t runner;

	if (fault == C3_FAULT_NONE) {
		runner = (pid_t)syscall(SYS_clone, SIGCHLD, NULL, NULL, NULL, NULL);
		if (runner == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			run_program(argv);
		}
		return runner < 0 ? -errno : wait_program(runner);
	}
	runner = start_runner(run_program, argv, &listener, &mem);
	if (runner < 0)
		return runner;
	/* The program's exec replaced the address space that fd was opened on. */
	close(mem);
	struct planted planted = {fault, runner, -1, sysconf(_SC_PAGESIZE)};

	status = notify(runner, listener, 0, answer, &planted);
	close(listener);
	return status;
}

/*
 * Runs a program with clone3 answered by a plain seccomp filter: -err for every call, as
 * container runtimes' default profiles do (ENOSYS unless CAP_SYS_ADMIN). Returns its wait
 * status, or -errno.
 */
int c3_exec_filtered(char *const argv[], int err)
{
	struct sock_filter code[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone3, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (err & SECCOMP_RET_DATA)),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {sizeof(code) / sizeof(code[0]), code};
	pid_t pid = (pid_t)syscall(SYS_clone, SIGCHLD, NULL, NULL, NULL, NULL);

	if (pid < 0)
		return -errno;
	if (pid == 0) {
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog))
			_exit(126);
		execv(argv[0], argv);
		_exit(127);
	}
	return wait_program(pid);
}

/* exec's answer: the caller's function, with the call's pid and clone3 arguments. */
static int supervised(const struct seccomp_notif *req, void *ctx)
{
	int (*decide)(uint32_t, uint64_t, uint64_t) = *(int (**)(uint32_t, uint64_t, uint64_t))ctx;

	return decide(req->pid, req->data.args[0], req->data.args[1]);
}

/*
 * Runs a program with every clone3 that it and its descendants make answered by
 * decide(pid, args, size): -errno to fail the call with, 0 to let the real kernel take it.
 * ^C and ^\ are the program's to handle (as system() has it): this process ignores them
 * meanwhile. Returns the program's wait status, or -errno.
 */
int c3_exec_supervised(char *const argv[], int (*decide)(uint32_t, uint64_t, uint64_t))
{
	struct sigaction ignore = {.sa_handler = SIG_IGN}, saved_int, saved_quit;
	int listener, mem, status;
	pid_t runner = start_runner(run_program, argv, &listener, &mem);

	if (runner < 0)
		return runner;
	close(mem);
	sigaction(SIGINT, &ignore, &saved_int);
	sigaction(SIGQUIT, &ignore, &saved_quit);
	status = notify(runner, listener, 0, supervised, &decide);
	sigaction(SIGINT, &saved_int, NULL);
	sigaction(SIGQUIT, &saved_quit, NULL);
	close(listener);
	return status;
}
