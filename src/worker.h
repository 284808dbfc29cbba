/*
 * worker.h - a thread that sleeps in poll(2) and is stopped through a pipe:
 * the shape of postgres' leader election (leader.c) and LISTEN thread
 * (pg_listen.c), each of which owns a connection the thread polls.
 *
 * Threads: the worker's own thread calls worker_stopping() and
 * worker_wait(); the owner calls worker_start(), worker_stop() and
 * worker_close().
 */
#ifndef WORKER_H
#define WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

struct worker {
	pthread_t	 thread;
	bool		 running;	/* started, not joined */
	int		 wake[2];	/* pipe: worker_stop() writes a byte */
	atomic_bool	 stopping;
};

/*
 * Starts fn(arg) on a thread of its own.  Returns 0, or -1 with err set
 * ("cannot start the NAME thread", or the pipe's error).  w must be zeroed
 * (calloc); call worker_close() afterwards either way.
 */
int	worker_start(struct worker *w, void *(*fn)(void *), void *arg,
	    const char *name, char *err, size_t errlen);
/* Whether worker_stop() was called: the thread's loop ends. */
bool	worker_stopping(struct worker *w);
/*
 * Sleeps up to ms, or less when stopped or when fd (ignored when < 0) has
 * something to read.  Returns whether fd has.
 */
bool	worker_wait(struct worker *w, int fd, int ms);
/* Stops the thread and joins it; never frees.  Accepts a stopped one. */
void	worker_stop(struct worker *w);
/* worker_stop(), then closes the pipe. */
void	worker_close(struct worker *w);

#endif
