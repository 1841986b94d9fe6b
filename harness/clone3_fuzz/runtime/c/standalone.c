/*
 * The executor as a program of its own: main() around the very executor.c and sandbox.c
 * the Python package runs in-process, so that a VM, an emulator or a container runs the
 * same placement, the same raw call and the same settling. The protocol is in c3.h.
 *
 * It greets, then for each request runs the batch in its sandbox tree (started on the first
 * request, started again when a request asks for another environment) and writes the
 * outcomes. The end of the input ends it with status 0; a short read, a bad magic or a batch
 * it cannot run ends it with status 2, after one line on stderr.
 *
 * With --seccomp-bpf FILE it first loads that classic BPF program (a seccomp profile as
 * libseccomp compiled it, runtime/seccomp.py) into itself, as a container runtime does
 * before the container's first process: everything it runs is then under that filter.
 *
 * As a VM's init (pid 1 run as /init: the only program of an initramfs; a container's first
 * process is pid 1 too, under its own name) it first mounts what the sandbox
 * and the effects need, and speaks on the serial port the kernel's command line names
 * (c3.port=, the second UART by default: the first is the kernel's console); at the end it
 * powers the machine off, since an init that returns panics the kernel.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <fcntl.h>
#include <sched.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "c3.h"

/* The stream a batch is read from: buffered, since a coded blob is read a byte at a time. */
static struct {
	uint8_t buf[1 << 16];
	size_t pos, len;
} in;

static int next_byte(void)
{
	if (in.pos == in.len) {
		ssize_t r;

		while ((r = read(0, in.buf, sizeof(in.buf))) < 0 && errno == EINTR)
			;
		if (r <= 0)
			return -1;
		in.pos = 0;
		in.len = (size_t)r;
	}
	return in.buf[in.pos++];
}

/* Exactly len bytes, raw; 0 at a clean end before the first byte, -1 on a short read. */
static int read_raw(void *buf, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		int c = next_byte();

		if (c < 0)
			return i == 0 ? 0 : -1;
		((uint8_t *)buf)[i] = (uint8_t)c;
	}
	return 1;
}

/* len bytes of zero-run-length coded input; -1 on a short or malformed stream. */
static int read_coded(uint8_t *buf, size_t len)
{
	for (size_t i = 0; i < len;) {
		int c = next_byte(), run;

		if (c < 0)
			return -1;
		if (c) {
			buf[i++] = (uint8_t)c;
			continue;
		}
		if ((run = next_byte()) <= 0 || i + (size_t)run > len)
			return -1;
		memset(buf + i, 0, (size_t)run);
		i += (size_t)run;
	}
	return 1;
}

static int write_all(int fd, const void *buf, size_t len)
{
	while (len) {
		ssize_t w = write(fd, buf, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		buf = (const char *)buf + w;
		len -= (size_t)w;
	}
	return 0;
}

/* len bytes zero-run-length coded, written through a buffer. */
static int write_coded(const uint8_t *data, size_t len)
{
	uint8_t out[1 << 16];
	size_t used = 0;

	for (size_t i = 0; i < len;) {
		size_t run = 0;

		if (used + 2 > sizeof(out)) {
			if (write_all(1, out, used))
				return -1;
			used = 0;
		}
		while (i + run < len && !data[i + run] && run < 255)
			run++;
		if (run) {
			out[used++] = 0;
			out[used++] = (uint8_t)run;
			i += run;
		} else {
			out[used++] = data[i++];
		}
	}
	return write_all(1, out, used);
}

static int fail(const char *what, int err)
{
	fprintf(stderr, "clone3-fuzz-executor: %s%s%s\n", what, err ? ": " : "", err ? strerror(err) : "");
	return 2;
}

/* The mounts a sandbox in a fresh VM needs, and the protocol on its serial port as fds 0
 * and 1 (raw: a tty's line discipline would eat and rewrite bytes). */
static int become_init(void)
{
	static const struct { const char *type, *dir; } mounts[] = {
		{"devtmpfs", "/dev"}, {"proc", "/proc"}, {"sysfs", "/sys"}, {"cgroup2", "/sys/fs/cgroup"},
	};
	char cmdline[4096] = "", port[64] = "/dev/ttyS1";
	const char *named;
	struct termios raw;
	int fd;

	for (size_t i = 0; i < sizeof(mounts) / sizeof(mounts[0]); i++) {
		mkdir(mounts[i].dir, 0755);
		mount(mounts[i].type, mounts[i].dir, mounts[i].type, 0, NULL);
	}
	if ((fd = open("/dev/console", O_WRONLY | O_NOCTTY)) >= 0)
		dup2(fd, 2); /* diagnostics go to the kernel's console */
	if ((fd = open("/proc/cmdline", O_RDONLY)) >= 0) {
		if (read(fd, cmdline, sizeof(cmdline) - 1) < 0)
			cmdline[0] = 0;
		close(fd);
	}
	if ((named = strstr(cmdline, "c3.port=")))
		snprintf(port, sizeof(port), "%.*s", (int)strcspn(named + 8, " \n"), named + 8);
	fd = open(port, O_RDWR | O_NOCTTY);
	if (fd < 0 || tcgetattr(fd, &raw))
		return fail(port, errno);
	cfmakeraw(&raw);
	cfsetspeed(&raw, B115200);
	tcsetattr(fd, TCSANOW, &raw);
	dup2(fd, 0);
	dup2(fd, 1);
	return 0;
}

static int serve_requests(void);

/* Loads the BPF program in `path` as this process's seccomp filter. */
static int load_filter(const char *path)
{
	static struct sock_filter code[4096];
	struct sock_fprog prog = {0, code};
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, code, sizeof(code)) : -1;

	if (fd >= 0)
		close(fd);
	if (n <= 0 || n % (ssize_t)sizeof(code[0]))
		return fail("--seccomp-bpf: not a BPF program", n < 0 ? errno : 0);
	prog.len = (unsigned short)(n / (ssize_t)sizeof(code[0]));
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog))
		return fail("--seccomp-bpf: the kernel refused the filter", errno);
	return 0;
}

int main(int argc, char **argv)
{
	int status;

	/* A static program of some hundred kilobytes: nothing worth shedding, and under
	 * valgrind or qemu-user the files mapped beside it are the emulator's own. */
	c3_shed = 0;
	if (argc == 3 && !strcmp(argv[1], "--seccomp-bpf"))
		return load_filter(argv[2]) ? 2 : serve_requests();
	if (getpid() != 1 || argc < 1 || strcmp(argv[0], "/init"))
		return serve_requests();
	status = become_init() ? 2 : serve_requests();
	fprintf(stderr, "clone3-fuzz-executor: done (%d), powering off\n", status);
	sync();
	reboot(RB_POWER_OFF);
	return status;
}

/* What it runs under, so that a wrapper that never ran it (valgrind on a shell) is caught:
 * valgrind's tool is mapped in our address space; an emulated x86 CPU names QEMU. */
static void describe_emulator(struct c3_hello *hello)
{
	char maps[1 << 16];
	int fd = open("/proc/self/maps", O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, maps, sizeof(maps) - 1) : -1;

	if (fd >= 0)
		close(fd);
	maps[n > 0 ? n : 0] = 0;
	if (strstr(maps, "valgrind")) {
		snprintf(hello->emulator, sizeof(hello->emulator), "valgrind");
		return;
	}
#if defined(__x86_64__)
	{
		uint32_t brand[12];

		for (uint32_t leaf = 0; leaf < 3; leaf++)
			__asm__ volatile("cpuid"
					 : "=a"(brand[4 * leaf]), "=b"(brand[4 * leaf + 1]), "=c"(brand[4 * leaf + 2]),
					   "=d"(brand[4 * leaf + 3])
					 : "a"(0x80000002 + leaf), "c"(0));
		if (memmem(brand, sizeof(brand), "QEMU", 4))
			snprintf(hello->emulator, sizeof(hello->emulator), "%.48s", (const char *)brand);
	}
#endif
}

/* The text of `path` (at most `size` - 1 bytes) in `text`, "" where it is unreadable. */
static char *slurp(const char *path, char *text, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, text, size - 1) : -1;

	if (fd >= 0)
		close(fd);
	text[n > 0 ? n : 0] = 0;
	return text;
}

/* The line of `text` that starts with `key`, past the key; NULL if none. */
static const char *field(const char *text, const char *key)
{
	for (const char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
		if (!strncmp(line, key, strlen(key)))
			return line + strlen(key);
	return NULL;
}

/* What the caller cannot see from outside: the namespace types this kernel has, those
 * whose user.max_<type>_namespaces is 0, and its pid_max. */
static void describe_kernel(struct c3_hello *hello)
{
	const char *name = C3_NS_NAMES;
	char path[64], text[32];
	struct stat st;

	for (int bit = 0; *name; bit++) {
		size_t len = strcspn(name, " ");

		snprintf(path, sizeof(path), "/proc/self/ns/%.*s", (int)len, name);
		if (lstat(path, &st) == 0)
			hello->namespaces |= 1U << bit;
		snprintf(path, sizeof(path), "/proc/sys/user/max_%.*s_namespaces", (int)len, name);
		if (!strcmp(slurp(path, text, sizeof(text)), "0\n"))
			hello->exhausted |= 1U << bit;
		name += len + (name[len] == ' ');
	}
	hello->pid_max = (uint32_t)strtoul(slurp("/proc/sys/kernel/pid_max", text, sizeof(text)), NULL, 10);
}

/* Who the program runs as, in the wrapper's hands: the profile is measured for it. */
static void describe_caller(struct c3_hello *hello)
{
	unsigned long inside = 1, outside = 1, count = 0;
	char status[4096], map[128];
	const char *value;
	int waited = 0;
	pid_t child;

	hello->uid = getuid();
	hello->euid = geteuid();
	hello->egid = getegid();
	slurp("/proc/self/status", status, sizeof(status));
	if ((value = field(status, "CapEff:")))
		hello->cap_eff = strtoull(value, NULL, 16);
	if ((value = field(status, "Seccomp:")))
		hello->seccomp = (uint32_t)strtoul(value, NULL, 10);
	if ((value = field(status, "NSpid:")))
		for (char *end; strtol(value, &end, 10), end != value; value = end)
			hello->pid_levels++;
	sscanf(slurp("/proc/self/uid_map", map, sizeof(map)), "%lu %lu %lu", &inside, &outside, &count);
	hello->userns_initial = inside == 0 && outside == 0 && count == 4294967295UL;
	/* Whether this caller may make a user namespace at all (a chroot, an LSM, a missing
	 * uid mapping refuse it), asked of unshare(2), which shares create_user_ns() with
	 * clone3 but not clone3's code. A filter may answer unshare otherwise: then unknown. */
	if ((child = fork()) == 0)
		_exit(syscall(SYS_unshare, CLONE_NEWUSER) ? errno : 0);
	if (child < 0) /* no room for the child (a pids limit): unknown */
		hello->userns = 2;
	else if (waitpid(child, &waited, 0) == child && WIFEXITED(waited) && WEXITSTATUS(waited) == EPERM)
		hello->userns = hello->seccomp == 2 ? 2 : 1;
}

static int serve_requests(void)
{
	struct c3_hello hello = {.magic = C3_PROGRAM_MAGIC, .version = C3_PROGRAM_VERSION,
				 .outcome_size = sizeof(struct c3_outcome)};

	struct c3_tree *tree = NULL;
	struct c3_env running = {0};
	size_t blob_cap = 0;
	uint32_t case_cap = 0;
	struct utsname uts;

	hello.page_size = (uint32_t)sysconf(_SC_PAGESIZE);
	describe_kernel(&hello);
	describe_emulator(&hello);
	describe_caller(&hello);
	if (uname(&uts) == 0) {
		snprintf(hello.release, sizeof(hello.release), "%s", uts.release);
		snprintf(hello.build, sizeof(hello.build), "%s", uts.version);
		snprintf(hello.machine, sizeof(hello.machine), "%s", uts.machine);
	}
	if (write_all(1, &hello, sizeof(hello)))
		return fail("cannot greet", errno);
	for (;;) {
		struct c3_request req;
		struct c3_reply reply = {C3_PROGRAM_MAGIC, 0, {0}};
		struct c3_outcome *out;
		uint8_t *blob;
		int got = read_raw(&req, sizeof(req)), err;

		if (got == 0)
			break;
		if (got < 0 || req.magic != C3_PROGRAM_MAGIC)
			return fail("a request that is not the protocol's", 0);
		blob = malloc(req.len ? req.len : 1);
		out = calloc(req.n ? req.n : 1, sizeof(*out));
		if (!blob || !out)
			return fail("no memory for the batch", ENOMEM);
		if (read_coded(blob, req.len) != 1)
			return fail("the batch ended early, or is not coded as the protocol says", 0);
		/* A tree belongs to one environment and bounds one batch: start another if needed. */
		if (tree && (memcmp(&running, &req.env, sizeof(running)) || req.len > blob_cap || req.n > case_cap)) {
			c3_tree_free(tree);
			tree = NULL;
		}
		if (!tree) {
			blob_cap = req.len > 1 << 20 ? req.len : 1 << 20;
			case_cap = req.n > 4096 ? req.n : 4096;
			running = req.env;
			tree = c3_tree_start(&running, blob_cap, case_cap, &err);
			if (!tree)
				return fail("cannot start the sandbox", -err);
		}
		if ((err = c3_tree_post(tree, blob, req.len, req.n)))
			return fail("cannot post the batch", -err);
		while ((err = c3_tree_wait(tree)) == -EINTR)
			;
		c3_tree_collect(tree, out, &reply.info);
		reply.n = req.n;
		if (write_all(1, &reply, sizeof(reply)) || write_coded((const uint8_t *)out, req.n * sizeof(*out)))
			return fail("cannot answer", errno);
		free(blob);
		free(out);
		if (err || reply.info.error) {
			c3_tree_free(tree); /* a dead tree, or one that ended on a harness failure */
			tree = NULL;
		}
	}
	if (tree)
		c3_tree_free(tree);
	return 0;
}
