/*
 * fuzz_ini.c - a fuzz target for the INI configuration parser (config.c on
 * libinih), on any bytes an operator's editor could leave in the file.
 *
 * The input is the whole file.  A load must either succeed with every value
 * in its documented range, or fail with a message and leave the struct
 * exactly as it was (here: the defaults).  Built with clang
 * -fsanitize=fuzzer (`make fuzz`) it is a libFuzzer target; built without
 * FUZZING it replays the files named on its command line (`make unit`).
 */
#include <sys/mman.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int	memfd = -1;
static char	path[64];

static void
check_ranges(const struct config *c)
{
	if (c->max_body < 1 || c->max_body > 64 * 1024 * 1024 ||
	    c->tolerance < 1 || c->tolerance > 86400 ||
	    c->retain_days < 0 || c->retain_days > 36500 ||
	    c->hook_timeout < 1 || c->max_attempts < 1 || c->max_attempts > 1000 ||
	    c->max_connections < 1 || c->per_ip_connections < 0 ||
	    c->request_timeout < 1 || c->control_idle_timeout < 1 ||
	    c->control_mode > 0777 || !(c->max_rps > 0) ||
	    c->listen == NULL || c->listen_host == NULL || c->http_path == NULL ||
	    c->http_path[0] != '/' || c->database == NULL || c->listen_port == 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config c, d;
	char err[4096];

	if (memfd == -1) {
		if ((memfd = memfd_create("fuzz.conf", 0)) == -1)
			abort();
		snprintf(path, sizeof(path), "/proc/self/fd/%d", memfd);
	}
	if (ftruncate(memfd, 0) == -1 || pwrite(memfd, data, size, 0) != (ssize_t)size)
		abort();
	config_defaults(&c);
	config_defaults(&d);
	err[0] = '\0';
	if (config_load(&c, path, err, sizeof(err)) == 0) {
		check_ranges(&c);
		if (c.file == NULL)
			abort();
	} else {
		/* A failed load says why and changes nothing. */
		if (err[0] == '\0' || c.file != NULL || c.max_body != d.max_body ||
		    c.tolerance != d.tolerance || strcmp(c.database, d.database) != 0 ||
		    strcmp(c.listen, d.listen) != 0)
			abort();
	}
	config_release(&c);
	config_release(&d);
	return 0;
}

#ifndef FUZZING
#include "fuzz_replay.h"
#endif
