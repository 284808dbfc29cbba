/*
 * faultshim.c - an I/O fault injector for the end-to-end tests, loaded with
 * LD_PRELOAD into a daemon under test (never built into the daemon).  It sits
 * under SQLite's unix VFS and under the sinks: while the file named by
 * $FAULT_ON exists, every call of $FAULT_OPS (a comma list of write, pwrite,
 * fsync, fdatasync) on a file whose path ends in one of $FAULT_PATHS (comma
 * list) fails with errno $FAULT_ERRNO (default EIO), after $FAULT_SKIP such
 * calls have gone through.  Removing the file ends the fault.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

static long skipped;

static int
matches_list(const char *list, const char *s, int suffix)
{
	char buf[1024], *tok, *save = NULL;
	size_t sl = strlen(s), tl;

	if (list == NULL)
		return 0;
	snprintf(buf, sizeof(buf), "%s", list);
	for (tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
		tl = strlen(tok);
		if (suffix ? (sl >= tl && strcmp(s + sl - tl, tok) == 0) : strcmp(s, tok) == 0)
			return 1;
	}
	return 0;
}

static int
fault(const char *op, int fd)
{
	const char *on = getenv("FAULT_ON"), *e;
	char link[64], path[4096];
	ssize_t n;

	if (on == NULL || access(on, F_OK) != 0 || !matches_list(getenv("FAULT_OPS"), op, 0))
		return 0;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	if ((n = readlink(link, path, sizeof(path) - 1)) <= 0)
		return 0;
	path[n] = '\0';
	if (!matches_list(getenv("FAULT_PATHS"), path, 1))
		return 0;
	if ((e = getenv("FAULT_SKIP")) != NULL && __atomic_add_fetch(&skipped, 1,
	    __ATOMIC_SEQ_CST) <= atol(e))
		return 0;
	e = getenv("FAULT_ERRNO");
	errno = e != NULL ? atoi(e) : EIO;
	return 1;
}

#define REAL(name) static __typeof__(name) *real_##name; \
	if (real_##name == NULL) *(void **)&real_##name = dlsym(RTLD_NEXT, #name)

ssize_t
write(int fd, const void *buf, size_t len)
{
	REAL(write);
	return fault("write", fd) ? -1 : real_write(fd, buf, len);
}

ssize_t
pwrite(int fd, const void *buf, size_t len, off_t off)
{
	REAL(pwrite);
	return fault("pwrite", fd) ? -1 : real_pwrite(fd, buf, len, off);
}

ssize_t
pwrite64(int fd, const void *buf, size_t len, off64_t off)
{
	REAL(pwrite64);
	return fault("pwrite", fd) ? -1 : real_pwrite64(fd, buf, len, off);
}

int
fsync(int fd)
{
	REAL(fsync);
	return fault("fsync", fd) ? -1 : real_fsync(fd);
}

int
fdatasync(int fd)
{
	REAL(fdatasync);
	return fault("fdatasync", fd) ? -1 : real_fdatasync(fd);
}
