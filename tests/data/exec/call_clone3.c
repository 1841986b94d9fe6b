/*
 * One clone3 call, as a program of a user's would make it, for `clone3-fuzz exec` tests:
 *     call_clone3 SIZE FLAGS [SET_TID_SIZE]
 * prints "success" or the errno's number, and exits 0. The child exits at once.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SYS_clone3
#define SYS_clone3 435
#endif

int main(int argc, char **argv)
{
	uint64_t args[11] = {0};
	pid_t tids[1] = {0};
	long ret;

	if (argc < 3)
		return 2;
	args[0] = strtoull(argv[2], NULL, 0);
	args[4] = SIGCHLD;
	if (argc > 3 && atoi(argv[3])) {
		tids[0] = 4242; /* asked for at this level (needs CAP_SYS_ADMIN) */
		args[8] = (uintptr_t)tids;
		args[9] = (uint64_t)atoi(argv[3]);
	}
	ret = syscall(SYS_clone3, args, strtoull(argv[1], NULL, 0));
	if (ret == 0)
		_exit(0);
	if (ret < 0) {
		printf("%d\n", errno);
		return 0;
	}
	waitpid((pid_t)ret, NULL, 0);
	printf("success\n");
	return 0;
}
