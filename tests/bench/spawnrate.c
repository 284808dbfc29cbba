/*
 * spawnrate.c - the reference for the hook sink in `make bench`.
 *
 *   spawnrate [-d SECONDS] [-n MAX] PROGRAM
 *
 * Runs PROGRAM with posix_spawn(3) and reaps it with waitpid(2), one run
 * after the other, for SECONDS (default 2) or MAX runs, and prints how many
 * it managed per second: the ceiling a hook sink could reach on this
 * machine when it runs the hook once per outcome.  Like the hook sink, it
 * gives the child a pipe on stdin (the outcome line is written into it)
 * and an empty environment but PATH.
 *
 * Output: one human line, then "RESULT runs=N secs=S rate=R".  Exit 0, 1
 * when a run failed, 2 on a usage error.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One run with the line on its stdin.  Returns its wait status, or -1. */
static int
run_once(const char *prog, const char *line)
{
	char *argv[] = { (char *)(uintptr_t)prog, NULL };
	char *envp[] = { (char *)(uintptr_t)"PATH=/usr/local/bin:/usr/bin:/bin", NULL };
	posix_spawn_file_actions_t fa;
	int p[2], status = -1, rc;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) == -1)
		return -1;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, p[0], 0);
	rc = posix_spawn(&pid, prog, &fa, NULL, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	close(p[0]);
	if (rc == 0) {
		/* A hook need not read its stdin: EPIPE is fine. */
		(void)!write(p[1], line, strlen(line));
	}
	close(p[1]);
	if (rc != 0) {
		errno = rc;
		return -1;
	}
	while (waitpid(pid, &status, 0) == -1)
		if (errno != EINTR)
			return -1;
	return status;
}

int
main(int argc, char *argv[])
{
	const char *line = "{\"seq\":1,\"type\":\"payment.completed\"}\n";
	double secs = 2, t0, t;
	long max = -1, runs = 0;
	int ch, st;

	while ((ch = getopt(argc, argv, "d:n:")) != -1) {
		if (ch == 'd')
			secs = atof(optarg);
		else if (ch == 'n')
			max = atol(optarg);
		else
			secs = -1;
	}
	if (optind != argc - 1 || secs <= 0) {
		fprintf(stderr, "usage: spawnrate [-d SECONDS] [-n MAX] PROGRAM\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	t0 = now_s();
	do {
		if ((st = run_once(argv[optind], line)) == -1 || !WIFEXITED(st) ||
		    WEXITSTATUS(st) != 0) {
			fprintf(stderr, "spawnrate: %s: %s\n", argv[optind], st == -1 ?
			    strerror(errno) : "did not exit 0");
			return 1;
		}
		runs++;
		t = now_s() - t0;
	} while (t < secs && (max < 0 || runs < max));
	printf("spawnrate: %ld runs of %s in %.2f s: %.0f/s\n", runs, argv[optind], t,
	    (double)runs / t);
	printf("RESULT runs=%ld secs=%.3f rate=%.1f\n", runs, t, (double)runs / t);
	return 0;
}
