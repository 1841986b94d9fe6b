/*
 * clone3-fuzz executor: the wire protocol shared by the executor and its sandbox.
 *
 * A batch is a byte blob of case records, each 8-byte aligned:
 *
 *     struct c3_case            (32 bytes)
 *     uint8_t  bytes[nbytes]    the struct image, padded to 8
 *     int32_t  pids[nset_tid]   a set_tid list, padded to 8
 *
 * and the outcomes are an array of struct c3_outcome, one per case. Nothing in the
 * protocol says how the executor's process was started: c3_execute() only needs the
 * blob, the outcome array and a cursor, so the same loop can run in-process, in the
 * sandbox below, or as a program of its own under an emulator.
 *
 * Every constant here is also exported to Python through the cffi cdef, so Python
 * never repeats a number.
 */
#ifndef C3_H
#define C3_H

#include <stddef.h>
#include <stdint.h>

/* Where the struct image is placed for the call (the case's "memory" key). */
#define C3_MEM_MAPPED 0   /* readable memory continues past the buffer */
#define C3_MEM_GUARD 1    /* byte readable-1 is the last mapped byte */
#define C3_MEM_NULL 2     /* the pointer is NULL */
#define C3_MEM_UNMAPPED 3 /* the pointer is inside an inaccessible page */

/* How the executor fills in one 8-byte field of the image before the call. */
#define C3_REF_LITERAL 0      /* keep the bytes of the image */
#define C3_REF_SCRATCH 1      /* writable memory of the executor, one slot per field */
#define C3_REF_UNMAPPED 2     /* an address inside an inaccessible page */
#define C3_REF_KERNEL 3       /* an address in the kernel half */
#define C3_REF_SET_TID_LIST 4 /* the address of the record's pid list */
#define C3_REF_CGROUP2 5      /* the fd of the batch's scratch cgroup v2 directory */

/* What became of a case. */
#define C3_OUT_PENDING 0     /* never finished (the batch was interrupted) */
#define C3_OUT_RETURNED 1    /* ret holds clone3's return value (pid or -errno) */
#define C3_OUT_KILLED_BY_CHILD 2 /* exit_signal SIGKILL killed the executor: the call succeeded */
#define C3_OUT_CRASH 3       /* the executor died; status holds its wait status */
#define C3_OUT_TIMEOUT 4     /* the executor was killed after the per-case timeout */
#define C3_OUT_SIGSYS 5      /* a seccomp filter killed the executor in clone3 (KILL or TRAP) */

/* How the sandbox isolated the batch (struct c3_batch_info.isolation). */
#define C3_ISO_PIDNS 1       /* init of a fresh pid namespace */
#define C3_ISO_USERNS 2      /* ... inside a fresh user namespace (capabilities dropped) */
#define C3_ISO_SUBREAPER 3   /* no namespace allowed: a child subreaper only */

/* The CLONE_* bits the executor and the planted faults act on (include/uapi/linux/sched.h),
 * defined here once: libc headers lack the newer ones, and musl ships no kernel headers. */
#define C3_CSIGNAL 0xff
#define C3_CLONE_NEWTIME 0x80
#define C3_CLONE_VM 0x100
#define C3_CLONE_SIGHAND 0x800
#define C3_CLONE_PIDFD 0x1000
#define C3_CLONE_VFORK 0x4000
#define C3_CLONE_PARENT 0x8000
#define C3_CLONE_THREAD 0x10000
#define C3_CLONE_SETTLS 0x80000
#define C3_CLONE_DETACHED 0x400000
#define C3_CLONE_CLEAR_SIGHAND (1ULL << 32)

/* Offsets in struct clone_args (every field an __aligned_u64). */
#define C3_OFF_FLAGS 0
#define C3_OFF_EXIT_SIGNAL 32

#define C3_NFIELDS 11
#define C3_MAX_IMAGE 65536   /* the largest struct image or readable extent placed */
#define C3_MAX_SET_TID 4096  /* the longest set_tid list: a scratch slot's worth (the kernel reads 32;
                               * its selftests pass longer arrays) */
#define C3_SCRATCH_SLOT 16384
#define C3_SCRATCH_ZEROED 256 /* bytes of a slot cleared before each use (64 pids) */
#define C3_CGROUP_FD 3       /* where the sandbox puts the batch's cgroup v2 fd */

/*
 * Effects: what a call did besides its return value. The pidfd, child_tid and parent_tid
 * slots of a "scratch" pointer are pre-filled with C3_MARKER, so that a word the kernel
 * never wrote reads back as the marker (it writes 4 bytes: an int or a pid_t). Everything
 * else is looked at only after a successful call, so rejected cases cost nothing more.
 */
#define C3_MARKER 0x5a5a5a5a5a5a5a5aULL
#define C3_CLONE_CHILD_CLEARTID 0x200000
#define C3_CLONE_CHILD_SETTID 0x1000000
#define C3_CLONE_PARENT_SETTID 0x100000
#define C3_CLONE_NEWUSER 0x10000000
#define C3_CLONE_NEWPID 0x20000000
#define C3_CLONE_INTO_CGROUP (1ULL << 33)
#define C3_OUT_WORDS 3       /* the pidfd, child_tid and parent_tid slots, fields 1..3 */
#define C3_SEEN_WORD 0x1     /* bit << i: word[i] was read back (its field was "scratch") */
#define C3_SEEN_SIGNALS 0x8  /* signals holds what the executor received */
#define C3_SEEN_PIDFD 0x10   /* pidfd_pid holds what the returned pidfd names */
#define C3_SEEN_VFORK 0x20
#define C3_SEEN_CGROUP 0x40
#define C3_SEEN_NS 0x80
#define C3_SEEN_PID 0x100    /* requested_pid is what set_tid asked for at the caller's level */
#define C3_PIDFD_GONE (-1)   /* the pidfd's task has been reaped (fdinfo "Pid: -1") */
#define C3_PIDFD_NOT_PIDFD (-2) /* the fd is open but is no pidfd */
#define C3_PIDFD_CLOSED (-3) /* no such fd: written, then released on an error path */
#define C3_NS_PID 0x1        /* the child is in another pid namespace than the executor */
#define C3_NS_USER 0x2       /* ... another user namespace */
#define C3_LINGER_NS 300000  /* how long a CLONE_VFORK child sleeps before it exits */
#define C3_EFFECTS_TEXT 160  /* room for c3_effects_text() */
/* Signals 1..31 by name, as the generic Linux numbering has them (x86, arm64, riscv...). */
#define C3_SIGNAL_NAMES "HUP INT QUIT ILL TRAP ABRT BUS FPE KILL USR1 SEGV USR2 PIPE ALRM TERM STKFLT CHLD CONT STOP TSTP TTIN TTOU URG XCPU XFSZ VTALRM PROF WINCH IO PWR SYS"

struct c3_case {
	uint64_t size;           /* clone3's size argument, passed verbatim */
	uint32_t nbytes;         /* bytes of struct image that follow */
	uint32_t readable;       /* C3_MEM_GUARD: bytes mapped from the buffer's start */
	uint16_t memory;         /* C3_MEM_* */
	uint16_t nset_tid;       /* pids that follow the image */
	uint8_t ref[C3_NFIELDS]; /* C3_REF_* per field, in uapi order */
	uint8_t nrefs;           /* how many of ref[] are not C3_REF_LITERAL */
};
_Static_assert(sizeof(struct c3_case) == 32, "the wire header is 32 bytes");

struct c3_outcome {
	int64_t ret;          /* C3_OUT_RETURNED: clone3's return value */
	uint32_t kind;        /* C3_OUT_* */
	int32_t status;       /* C3_OUT_CRASH: the executor's wait status */
	int32_t child_signal; /* the exit_signal the kernel will read, written before the call */
	uint32_t seen;        /* C3_SEEN_*: which effects below were observed */
	uint64_t word[C3_OUT_WORDS]; /* the pidfd, child_tid and parent_tid slots after the call */
	uint64_t signals;     /* signals received once the child was settled: bit n-1 for signal n */
	int32_t pidfd_pid;    /* the pid (at the executor's level) the pidfd names, or C3_PIDFD_* */
	int32_t requested_pid; /* what set_tid asked for at the executor's level */
	uint8_t vfork;        /* CLONE_VFORK: 1 when the child was exiting as the call returned */
	uint8_t cgroup;       /* CLONE_INTO_CGROUP: 1 when the child is in the batch's cgroup */
	uint8_t ns;           /* C3_NS_*: namespaces the child does not share with the executor */
	uint8_t in_call;      /* 1 while the executor is inside clone3 (a death then is the call's) */
	uint8_t pad[4];
};

/* Planted faults (faults.c): clone3 made to misbehave, for the selftest. */
#define C3_FAULT_NONE 0
#define C3_FAULT_OVERSIZE_EINVAL 1
#define C3_FAULT_UNDERSIZE_E2BIG 2
#define C3_FAULT_TAIL_IGNORED 3
#define C3_FAULT_DETACHED_ACCEPTED 4
#define C3_FAULT_NEWTIME_REJECTED 5
#define C3_FAULT_EXIT_SIGNAL_UNCHECKED 6
#define C3_FAULT_VM_VFORK_EINVAL 7
#define C3_FAULT_READS_PAST_SIZE 8
#define C3_FAULT_STACK_UNCHECKED 9
#define C3_FAULT_BETWEEN_VERSIONS_EINVAL 10
#define C3_FAULT_CLEAR_SIGHAND_ACCEPTED 11
#define C3_FAULT_PIDFD_THREAD_EINVAL 12
#define C3_FAULT_STACK_RANGE_UNCHECKED 13
#define C3_FAULT_TLS_RANGE_UNCHECKED 14
#define C3_FAULT_PID_MAX_UNCHECKED 15
#define C3_FAULT_PARENT_TID_IGNORED 16
#define C3_FAULT_EXIT_SIGNAL_SIGCHLD 17
#define C3_FAULT_PIDFD_DROPPED 18
#define C3_FAULT_SET_TID_SHIFTED 19
#define C3_FAULT_PARENT_TID_UNASKED 20
#define C3_FAULT_VFORK_IGNORED 21
#define C3_FAULT_CGROUP_IGNORED 22
#define C3_NFAULTS 23

struct c3_env {
	int32_t cgroup_fd;   /* for C3_REF_CGROUP2; -1 when the batch has none */
	uint32_t timeout_ms; /* per case, enforced by the sandbox */
	int32_t fault;       /* C3_FAULT_*: the selftest's planted fault, 0 for the real kernel */
	int32_t pad;
};

struct c3_batch_info {
	int32_t isolation;  /* C3_ISO_* */
	int32_t error;      /* errno of a harness failure, 0 when the batch ran */
	uint32_t executors; /* executor processes started during the batch */
	uint32_t done;      /* cases with an outcome */
};

/* Runs cases [first, n) of the blob in the calling process. *cursor names the case in
 * flight; out[i].kind is written last, so a reader that sees it set sees the outcome. */
int c3_execute(const uint8_t *blob, size_t len, uint32_t first, uint32_t n,
	       struct c3_outcome *out, volatile uint32_t *cursor, const struct c3_env *env);

/*
 * A sandboxed executor process tree that stays up across batches; see sandbox.c. Each
 * batch is posted (copied into the tree's shared memory), waited for and collected;
 * blob_cap and case_cap bound one batch. The tree dies with the thread that started it.
 */
struct c3_tree;
struct c3_tree *c3_tree_start(const struct c3_env *env, size_t blob_cap, uint32_t case_cap, int *err);
int c3_tree_post(struct c3_tree *t, const uint8_t *blob, size_t len, uint32_t n);
int c3_tree_wait(struct c3_tree *t);
void c3_tree_collect(struct c3_tree *t, struct c3_outcome *out, struct c3_batch_info *info);
void c3_tree_stop(struct c3_tree *t);
void c3_tree_free(struct c3_tree *t);

/*
 * The executor as a program of its own (standalone.c): the same loop and sandbox, with
 * batches over a byte stream (stdin and stdout, a pipe, a serial line), for where no Python
 * runs: a VM's init, an emulator, a container. It greets once, then answers each request
 * until the stream ends. Every integer is in the host's byte order and layout: the
 * program runs on the machine (or emulated machine) the caller built it for.
 *
 * A batch's blob and its outcomes travel zero-run-length coded (a 0 byte, then how many
 * zero bytes it stands for, 1..255; any other byte as it is): struct images and outcomes
 * are mostly zeros, and a VM's serial line carries some tens of kilobytes a second.
 */
#define C3_PROGRAM_MAGIC 0x58453343  /* "C3EX" */
#define C3_PROGRAM_VERSION 3
#define C3_UTS_LEN 65                /* struct utsname's fields on Linux */
/* The namespace types, in the order of struct c3_hello's namespaces bits (/proc/self/ns). */
#define C3_NS_NAMES "mnt uts ipc pid cgroup net time user"

struct c3_hello {
	uint32_t magic;              /* C3_PROGRAM_MAGIC */
	uint32_t version;            /* C3_PROGRAM_VERSION */
	uint32_t page_size;
	uint32_t outcome_size;       /* sizeof(struct c3_outcome): a mismatch is a build for another layout */
	uint32_t namespaces;         /* bit i: the i-th type of C3_NS_NAMES is in /proc/self/ns */
	uint32_t pid_max;            /* /proc/sys/kernel/pid_max, 0 where unreadable */
	/* The program's own caller, which a wrapper chooses (a container's capabilities, its
	 * user namespace, its filter): what the caller outside sees of itself says nothing. */
	uint32_t exhausted;          /* bit i: user.max_<i-th of C3_NS_NAMES>_namespaces is 0 */
	uint32_t uid, euid, egid;
	uint32_t seccomp;            /* the Seccomp line of /proc/self/status */
	uint32_t userns_initial;     /* 1: /proc/self/uid_map maps every uid to itself */
	uint32_t pid_levels;         /* entries of the NSpid line; 0 where procfs shows none */
	uint32_t userns;             /* unshare(CLONE_NEWUSER) in a child: 0 done, 1 EPERM, 2 unknown
	                              * (EPERM under a filter, or no child could be made) */
	uint64_t cap_eff;            /* CapEff */
	char release[C3_UTS_LEN];    /* uname -r, -v and -m of the kernel it runs on */
	char build[C3_UTS_LEN];
	char machine[C3_UTS_LEN];
	char emulator[49];           /* what it runs under, as it can tell: "valgrind", a CPU brand with "QEMU", "" */
};

struct c3_request {
	uint32_t magic;              /* C3_PROGRAM_MAGIC */
	uint32_t n;                  /* cases in the blob that follows */
	uint64_t len;                /* bytes of blob */
	struct c3_env env;           /* cgroup_fd is the program's own: -1 here */
};

struct c3_reply {
	uint32_t magic;
	uint32_t n;                  /* outcomes that follow */
	struct c3_batch_info info;
};

/* Marks MADV_DONTFORK what a process forked from the caller does not run (its large
 * anonymous mappings, the files other than this code, libc and the loader); see sandbox.c.
 * The tree does it unless c3_shed is 0 (standalone.c: nothing to shed, and under an
 * emulator the other files are the emulator itself). */
extern int c3_shed;
void c3_shed_inherited_memory(void);

/* Runs serve(arg) with every clone3 it makes answered as a planted fault says; returns
 * only on a failure to set that up (-errno); "name: description" of a fault, NULL past the last. */
int c3_fault_serve(void (*serve)(const void *), const void *arg, int fault);
const char *c3_fault_name(int fault);
/* Runs a program under a planted fault, or under a seccomp filter that fails every clone3
 * with err; returns its wait status, or -errno. */
int c3_fault_exec(char *const argv[], int fault);
/* Runs a program with every clone3 of it and its descendants answered by decide(pid, args,
 * size): -errno fails the call, 0 lets the real kernel take it; returns its wait status. */
int c3_exec_supervised(char *const argv[], int (*decide)(uint32_t, uint64_t, uint64_t));
int c3_exec_filtered(char *const argv[], int err);

/* The baseline for benchmarks: the bare syscall in a loop; see sandbox.c. */
int64_t c3_baseline(const void *args, uint64_t size, uint32_t iterations, int reap);

/* The effects of an outcome in words, as the oracle predicts them ("" for none): items
 * "name=value" joined by commas, in a fixed order; see executor.c. Returns buf. */
char *c3_effects_text(const struct c3_outcome *o, char *buf, size_t len);

/* The raw syscall; a child returns nowhere: it sleeps for *linger (if given), then exits. */
struct timespec;
long c3_clone3(void *args, uint64_t size, const struct timespec *linger);

#endif
