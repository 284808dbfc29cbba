/*
 * worker.c - see worker.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "worker.h"

int
worker_start(struct worker *w, void *(*fn)(void *), void *arg, const char *name,
    char *err, size_t errlen)
{
	w->wake[0] = w->wake[1] = -1;
	if (pipe2(w->wake, O_CLOEXEC | O_NONBLOCK) == -1) {
		w->wake[0] = w->wake[1] = -1;
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		return -1;
	}
	if (pthread_create(&w->thread, NULL, fn, arg) != 0) {
		snprintf(err, errlen, "cannot start the %s thread", name);
		return -1;
	}
	w->running = true;
	return 0;
}

bool
worker_stopping(struct worker *w)
{
	return atomic_load(&w->stopping);
}

bool
worker_wait(struct worker *w, int fd, int ms)
{
	struct pollfd pfd[2] = { { .fd = w->wake[0], .events = POLLIN },
	    { .fd = fd, .events = POLLIN } };

	return poll(pfd, fd >= 0 ? 2 : 1, ms) > 0 && fd >= 0 && pfd[1].revents != 0;
}

void
worker_stop(struct worker *w)
{
	if (!w->running)
		return;
	atomic_store(&w->stopping, true);
	(void)!write(w->wake[1], "x", 1);
	pthread_join(w->thread, NULL);
	w->running = false;
}

void
worker_close(struct worker *w)
{
	worker_stop(w);
	for (int i = 0; i < 2; i++)
		if (w->wake[i] != -1) {
			close(w->wake[i]);
			w->wake[i] = -1;
		}
}
